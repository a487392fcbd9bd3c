// Renders a model's answer as Markdown, safely. marked turns Markdown into HTML with any raw
// HTML in the answer escaped (a model's `<script>` is shown as text, never run); DOMPurify
// then keeps only the elements and attributes Markdown needs (no event handlers, no SVG,
// no `javascript:` or `data:` links); links open in a new tab without an opener; images
// become links (an answer never makes the browser fetch anything); code blocks get
// highlighting and a copy button. Rendering replaces the element's children in one step,
// so re-rendering while tokens stream in neither flickers nor moves the scroll position.
(function () {
  "use strict";
  const escape = (s) =>
    String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const SAFE_URL = /^(https?:\/\/|mailto:|#)/i;

  marked.use({
    gfm: true,
    renderer: {
      html(token) { return escape(token.text || token.raw || ""); },
      image(token) {
        const label = token.text || token.href || "image";
        return SAFE_URL.test(token.href || "") ? `<a href="${escape(token.href)}">${escape(label)}</a>` : escape(label);
      },
    },
  });

  const PURIFY = {
    ALLOWED_TAGS: ["h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "strong", "em", "del",
      "code", "pre", "blockquote", "table", "thead", "tbody", "tr", "th", "td", "a", "span", "input"],
    ALLOWED_ATTR: ["href", "title", "class", "align", "start", "type", "checked", "disabled"],
    ALLOW_DATA_ATTR: false,
    ALLOW_UNKNOWN_PROTOCOLS: false,
  };

  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = (node.getAttribute("href") || "").trim();
      if (!SAFE_URL.test(href)) node.removeAttribute("href");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
    if (node.tagName === "INPUT" && node.getAttribute("type") !== "checkbox") node.remove();
    if (node.tagName === "INPUT") node.setAttribute("disabled", "");
  });

  function decorate(root, highlight) {
    for (const code of root.querySelectorAll("pre > code")) {
      if (highlight && typeof hljs !== "undefined") hljs.highlightElement(code);
      const copy = document.createElement("button");
      copy.type = "button";
      copy.className = "copy";
      copy.textContent = "Copy";
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(code.textContent);
          copy.textContent = "Copied";
        } catch (e) {
          copy.textContent = "Copy failed";
        }
        setTimeout(() => { copy.textContent = "Copy"; }, 1500);
      });
      code.parentElement.prepend(copy);
    }
  }

  /// Replaces `target`'s children with `text` rendered as safe Markdown; `highlight: false`
  /// skips syntax highlighting (for the frames of an answer still being written).
  function render(target, text, options) {
    const clean = DOMPurify.sanitize(marked.parse(String(text || "")), { ...PURIFY, RETURN_DOM_FRAGMENT: true });
    decorate(clean, !(options && options.highlight === false));
    target.replaceChildren(clean);
  }

  window.HearthMarkdown = { render };
})();
