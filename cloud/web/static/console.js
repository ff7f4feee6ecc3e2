// The invitation and shared-link pages: the code travels after '#', which no server or log sees.
// Move it into the form (and out of the address bar); a shared link then opens by itself.
(function () {
  var code = decodeURIComponent((location.hash || "").slice(1));
  var field = document.querySelector("[data-from-fragment]");
  if (!code || !field) return;
  field.value = code;
  history.replaceState(null, "", location.pathname);
  var form = document.querySelector("form[data-autosubmit]");
  if (form) form.submit();
})();
