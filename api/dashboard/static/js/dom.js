// Building DOM from data. Data only ever becomes text (textContent) or attribute values,
// never markup, so a product name or 1C error message cannot inject HTML.

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, string|number|boolean|null|undefined>} [attrs] attributes; `class`,
 *   `text` (textContent) and `dataset.*`-style `data-*` keys are supported; null/false skip.
 * @param {...(Node|string|null|undefined|false)} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Element by id; throws when the page lacks it (a broken template should fail loudly). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`элемент #${id} не найден`);
  return node;
}

/** Show a message in an element that is hidden while empty. */
export function setMessage(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}
