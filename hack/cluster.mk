# Local single-node Kubernetes and the project's images (see docs/local-cluster.md).
# Included by the root Makefile.

.PHONY: cluster-up cluster-down cluster-status cluster-binaries images deps
deps: ## install the Debian packages the cluster and image builds need
	hack/install-deps.sh

cluster-binaries: ## build (once, cached in ~/.cache/datapipelines) etcd, Kubernetes v1.33 and helm
	hack/build-binaries.sh

cluster-up: ## start the local cluster (etcd, apiserver, controllers, scheduler, containerd, kubelet); waits for node Ready
	hack/cluster.sh up

cluster-down: ## stop the local cluster, unmount and remove .cluster/
	hack/cluster.sh down

cluster-status: ## show what of the local cluster runs
	hack/cluster.sh status

images: ## build the base, app and runner images offline and import them into the cluster
	hack/images.sh
