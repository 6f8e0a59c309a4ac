// Text for the SVGs the scripts draw (bench-lib.mjs's chart, flame-lib.mjs's
// flame graphs): names and labels escaped for XML.
export const esc = (s) =>
  String(s).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );
