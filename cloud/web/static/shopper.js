// The landing page's share step, enhanced: the Web Share API where the browser has it, copy to
// clipboard otherwise. Without this file the link and code are on the page to copy by hand.
(function () {
  "use strict";
  var box = document.querySelector(".js-only");
  if (!box) return;
  var share = document.getElementById("share-button");
  var copy = document.getElementById("copy-button");
  box.hidden = false;
  if (share && navigator.share) {
    share.hidden = false;
    share.addEventListener("click", function () {
      navigator.share({ title: share.dataset.title, text: share.dataset.text, url: share.dataset.url })
        .catch(function () {});
    });
  }
  if (copy) {
    copy.addEventListener("click", function () {
      var url = copy.dataset.url;
      var done = function () { copy.textContent = copy.dataset.done; copy.setAttribute("aria-live", "polite"); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(url).then(done, function () { select(); });
      } else {
        select();
      }
      function select() {
        var field = document.getElementById("share-link");
        field.focus();
        field.select();
        try { if (document.execCommand("copy")) done(); } catch (e) { /* left selected to copy by hand */ }
      }
    });
  }
})();
