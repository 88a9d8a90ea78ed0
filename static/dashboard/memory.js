// The memory page: "select all" and the bulk-delete button's state (enabled once something is ticked).
function wire() {
  const form = document.querySelector(".memory-entries");
  if (!form) return;
  const button = form.querySelector("[data-bulk-delete]");
  const boxes = () => [...form.querySelectorAll('input[name="entry_ids"]')];
  const update = () => {
    if (button) button.disabled = !boxes().some((box) => box.checked);
  };
  form.addEventListener("change", (event) => {
    if (event.target.matches("[data-check-all]")) {
      for (const box of boxes()) box.checked = event.target.checked;
    }
    update();
  });
  // A row deleted on its own (htmx) leaves the table: recount.
  document.body.addEventListener("htmx:afterSwap", update);
  update();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
else wire();
