// The queue's keyboard: j / k move, Enter opens, c claims. Loaded as a file (no inline script,
// as the Content-Security-Policy asks); without JavaScript the queue is a plain table of links.
(function () {
  "use strict";
  var selected = -1;
  function rows() {
    var table = document.getElementById("queue");
    return table ? table.querySelectorAll("tbody tr[data-href]") : [];
  }
  function select(index) {
    var all = rows();
    if (!all.length) { return; }
    index = Math.max(0, Math.min(all.length - 1, index));
    if (selected >= 0 && all[selected]) { all[selected].classList.remove("selected"); }
    selected = index;
    all[selected].classList.add("selected");
    all[selected].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName)) { return; }
    var all = rows();
    if (!all.length) { return; }
    if (event.key === "j") { select(selected + 1); event.preventDefault(); }
    else if (event.key === "k") { select(selected - 1); event.preventDefault(); }
    else if (event.key === "Enter" && selected >= 0) {
      window.location.assign(all[selected].getAttribute("data-href"));
    } else if (event.key === "c" && selected >= 0) {
      var claim = all[selected].querySelector("form.claim");
      if (claim) { claim.submit(); }
    }
  });
})();
