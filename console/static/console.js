// warden console: progressive enhancement only. The pages work without
// it; with it, the approvals list refreshes itself and the time left
// counts down. No inline script: the CSP allows only this file.
"use strict";
(function () {
  function fmtLeft(s) {
    if (s <= 0) return "expired";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + sec + "s left";
  }
  function tick() {
    var now = Math.floor(Date.now() / 1000);
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      el.textContent = fmtLeft(parseInt(el.getAttribute("data-expires"), 10) - now);
    });
  }
  function busy(section) {
    var a = document.activeElement;
    if (a && section.contains(a) && a.tagName === "INPUT") return true;
    return Array.prototype.some.call(section.querySelectorAll("input[name=reason]"), function (i) { return i.value !== ""; });
  }
  function live(section) {
    var url = section.getAttribute("data-live");
    var last = section.innerHTML;
    setInterval(function () {
      if (busy(section)) return;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (html === null || html === last || busy(section)) return;
        last = html;
        section.innerHTML = html;
        section.setAttribute("data-updated", String(Date.now()));
        tick();
      }).catch(function () {});
    }, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("approvals");
    if (section) live(section);
    tick();
    setInterval(tick, 1000);
  });
})();
