# The README's first command. Included by the root Makefile.
.PHONY: demo demo-down
demo: venv ## the whole thing on a local cluster: cluster, images, chart, samples, a real sync and a batch
	hack/demo.sh

demo-down: ## uninstall the demo and stop the local cluster
	hack/demo.sh down
