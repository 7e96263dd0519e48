// datapipelines console: keeps the page current from the server's event stream (no polling).
// On each "change" the page's main part is fetched again and replaced; after a reconnect (an
// API restart, a refused stream) it is fetched at once, so nothing stays stale.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var state = document.getElementById("live-state");
  if (!main || !document.body.hasAttribute("data-live")) return;
  var source = null;
  var retry = null;
  var busy = false;
  var again = false;

  function say(text) { if (state) state.textContent = text; }

  function signIn() {
    window.location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin" })
      .then(function (resp) {
        if (resp.status === 401) { signIn(); return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined && html !== main.innerHTML) main.innerHTML = html;
      })
      .catch(function () { /* the stream's error handler reconnects */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function connect() {
    retry = null;
    source = new EventSource("/ui/events");
    source.addEventListener("open", function () { say("live"); refresh(); });
    source.addEventListener("change", refresh);
    source.addEventListener("signout", function () { source.close(); signIn(); });
    source.addEventListener("error", function () {
      // EventSource gives up for good on an HTTP error (a 429, a 401): open a new one.
      say("reconnecting…");
      source.close();
      if (retry === null) retry = window.setTimeout(connect, 2000);
    });
  }

  connect();
})();
