// /me: a copy button for the recovery code, where the browser can copy. The page works without it.
"use strict";
document.querySelectorAll("button[data-copy]").forEach((btn) => {
  const source = document.getElementById(btn.dataset.copy);
  if (!source || !navigator.clipboard) return;
  btn.hidden = false;
  btn.addEventListener("click", () => {
    navigator.clipboard.writeText(source.dataset.code || source.textContent.trim()).then(() => {
      btn.textContent = "✓";
    });
  });
});
