// The campaign editor (/merchant/campaigns/{id}). Without this file every part still works: the
// Preview button posts the form into the preview frame, and every rule's parameters are shown.
// With it, the preview follows the typing, and only the chosen rule's parameters show.
(function () {
  var form = document.getElementById("draft");
  var button = document.getElementById("preview-button");
  if (!form || !button) return;
  var timer = null;
  function refresh() {
    // submit() skips validation and the submit event: the draft is not saved, only previewed
    var action = form.getAttribute("action"), target = form.getAttribute("target");
    form.setAttribute("action", button.getAttribute("formaction"));
    form.setAttribute("target", "preview");
    form.submit();
    form.setAttribute("action", action);
    if (target === null) form.removeAttribute("target"); else form.setAttribute("target", target);
  }
  function later() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }
  var live = form.querySelectorAll("[data-live]");
  for (var i = 0; i < live.length; i++) {
    live[i].addEventListener("input", later);
    live[i].addEventListener("change", later);
  }
  var rule = document.getElementById("rule");
  function params() {
    var boxes = form.querySelectorAll(".params[data-rule]");
    for (var j = 0; j < boxes.length; j++) boxes[j].hidden = boxes[j].getAttribute("data-rule") !== rule.value;
  }
  if (rule) { rule.addEventListener("change", params); params(); }
  form.setAttribute("data-live-preview", "on");  // for the tests: the enhancement is running
})();
