// Markdown to safe HTML: marked renders, DOMPurify sanitizes (no scripts, no event handlers, no
// javascript: links), highlight.js colours code, and every code block gets a copy button.
import { marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight/highlight.min.js";
import { copyText } from "./app.js";

marked.setOptions({ gfm: true, breaks: true });

// Links open in a new tab without handing it our window.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

export function markdownToSafeHtml(text) {
  return DOMPurify.sanitize(marked.parse(text || ""), { USE_PROFILES: { html: true }, FORBID_ATTR: ["style"] });
}

/** Render `text` into `element`, highlighting and adding copy buttons to code blocks. */
export function renderMarkdown(element, text, { highlight = true } = {}) {
  element.innerHTML = markdownToSafeHtml(text);
  for (const block of element.querySelectorAll("pre > code")) {
    if (highlight) hljs.highlightElement(block);
    const pre = block.parentElement;
    pre.classList.add("code-block");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code button small";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    button.addEventListener("click", () => copyText(block.textContent));
    pre.append(button);
  }
}

/** Render every [data-markdown] element of `root` from its text content (server-rendered pages). */
export function renderAll(root = document) {
  for (const el of root.querySelectorAll("[data-markdown]:not([data-rendered])")) {
    renderMarkdown(el, el.textContent);
    el.dataset.rendered = "1";
  }
}
