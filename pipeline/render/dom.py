"""Ground truth read from a rendered page's DOM: visible text, layout boxes, omni-document HTML.

Runs inside the page (``page.evaluate``) after layout, so boxes are where Chromium
drew things. Boxes are converted to image pixels here (CSS px x devicePixelRatio),
clipped to the captured height; only the omni HTML's data-bbox may use the 0-1000 grid. An element split across
columns or pages has several fragments (``getClientRects``); its box is each
fragment, with the words that fall in it, never one box spanning the gap.
"""

EXTRACT_JS = r"""
({maxHeight, norm}) => {
  const dpr = window.devicePixelRatio || 1;
  const vw = document.documentElement.clientWidth;
  const docH = Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
  const capH = Math.min(docH, maxHeight);
  const imgW = Math.round(vw * dpr), imgH = Math.round(capH * dpr);
  const LABEL = {H1: 'title', H2: 'section_header', H3: 'section_header', H4: 'section_header',
    H5: 'section_header', H6: 'section_header', P: 'text', LI: 'list_item', TABLE: 'table',
    IMG: 'image', svg: 'chart', SVG: 'chart', CANVAS: 'image', math: 'formula', MATH: 'formula',
    PRE: 'code', BLOCKQUOTE: 'text', FIGCAPTION: 'caption', CAPTION: 'caption', DT: 'text', DD: 'text'};
  const ATOMIC = new Set(['TABLE', 'IMG', 'svg', 'SVG', 'CANVAS', 'math', 'MATH', 'PRE']);
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK', 'TITLE', 'IFRAME', 'OBJECT']);
  const KEEP = new Set(['H1','H2','H3','H4','H5','H6','P','UL','OL','LI','TABLE','THEAD','TBODY','TFOOT','TR','TD','TH',
    'CAPTION','FIGURE','FIGCAPTION','BLOCKQUOTE','PRE','CODE','B','STRONG','I','EM','SUB','SUP','BR','DL','DT','DD']);
  const px = (v, lim) => Math.max(0, Math.min(lim, Math.round(v * dpr)));
  const conv = (r) => [px(r.left, imgW), px(r.top + scrollY, imgH), px(r.right, imgW), px(r.bottom + scrollY, imgH)];
  const out = (b) => norm ? [b[0] * 1000 / imgW, b[1] * 1000 / imgH, b[2] * 1000 / imgW, b[3] * 1000 / imgH].map(Math.round) : b;
  const visible = (el) => {
    const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity || '1') > 0.05;
  };
  const inside = (r) => r.width > 0.5 && r.height > 0.5 && r.top + scrollY < capH && r.bottom > -scrollY;
  const clean = (t) => (t || '').replace(/\s+/g, ' ').trim();
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const ownText = (el) => Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  const label = (el) => LABEL[el.tagName] || ((el.tagName === 'DIV' || el.tagName === 'SPAN' && el.parentElement === document.body) && ownText(el) ? 'text' : null);
  const textOf = (el) => {
    if (el.tagName === 'math' || el.tagName === 'MATH') {
      const tex = el.querySelector('annotation[encoding="application/x-tex"]');
      return clean(tex ? tex.textContent : el.textContent);
    }
    if (el.tagName === 'IMG') return clean(el.getAttribute('alt'));
    if (el.tagName === 'svg' || el.tagName === 'SVG') return '';
    return clean(el.innerText);
  };
  // Words of a fragmented element, assigned to the fragment that holds their centre.
  const fragmentTexts = (el, rects) => {
    const parts = rects.map(() => []);
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const re = /\S+/g; let m;
      while ((m = re.exec(n.textContent))) {
        range.setStart(n, m.index); range.setEnd(n, m.index + m[0].length);
        const w = range.getBoundingClientRect();
        const cx = (w.left + w.right) / 2, cy = (w.top + w.bottom) / 2;
        const i = rects.findIndex(r => cx >= r.left - 1 && cx <= r.right + 1 && cy >= r.top - 1 && cy <= r.bottom + 1);
        if (i >= 0) parts[i].push(m[0]);
      }
    }
    return parts.map(p => p.join(' '));
  };
  const elements = [];
  const boxOf = new Map();
  const collect = (el) => {
    if (SKIP.has(el.tagName) || !visible(el)) return;
    const lab = label(el);
    if (lab) {
      const rects = Array.from(el.getClientRects()).filter(inside);
      if (rects.length) {
        const texts = rects.length > 1 && !ATOMIC.has(el.tagName) ? fragmentTexts(el, rects) : [textOf(el)];
        rects.forEach((r, i) => elements.push({category: lab, tag: el.tagName.toLowerCase(), box: conv(r),
          text: texts[i] !== undefined ? texts[i] : '', fragment: i, fragments: rects.length}));
        const u = rects.reduce((a, r) => ({left: Math.min(a.left, r.left), top: Math.min(a.top, r.top),
          right: Math.max(a.right, r.right), bottom: Math.max(a.bottom, r.bottom)}));
        boxOf.set(el, conv(u));
      }
      if (ATOMIC.has(el.tagName)) return;
    }
    for (const c of el.children) collect(c);
  };
  if (document.body) collect(document.body);
  const bbox = (el) => boxOf.has(el) ? ` data-bbox="${out(boxOf.get(el)).join(' ')}"` : '';
  const ser = (node) => {
    if (node.nodeType === 3) return esc(node.textContent.replace(/\s+/g, ' '));
    if (node.nodeType !== 1 || SKIP.has(node.tagName) || !visible(node)) return '';
    const tag = node.tagName;
    if (tag === 'IMG' || tag === 'CANVAS') return boxOf.has(node) ? `<img${bbox(node)} alt="${esc(textOf(node))}">` : '';
    if (tag === 'svg' || tag === 'SVG') return boxOf.has(node) ? `<div class="image"${bbox(node)}></div>\n` : '';
    if (tag === 'math' || tag === 'MATH') return boxOf.has(node) ? `<div class="formula"${bbox(node)}>${esc(textOf(node))}</div>` : '';
    const inner = Array.from(node.childNodes).map(ser).join('');
    if (KEEP.has(tag)) {
      const t = tag.toLowerCase();
      if (t === 'br') return '<br>';
      const span = ['rowspan', 'colspan'].filter(a => node.hasAttribute(a)).map(a => ` ${a}="${node.getAttribute(a)}"`).join('');
      const block = boxOf.has(node) || ['ul', 'ol', 'tr', 'figure', 'dl'].includes(t);
      return `<${t}${bbox(node)}${span}>${inner.trim()}</${t}>` + (block ? '\n' : '');
    }
    if (boxOf.has(node)) return `<p${bbox(node)}>${inner.trim()}</p>\n`;
    return inner;
  };
  const body = document.body ? ser(document.body).replace(/\n\s*\n+/g, '\n').trim() : '';
  return {
    text: document.body ? document.body.innerText.replace(/\n{3,}/g, '\n\n').trim() : '',
    elements, omni_html: `<html><body>\n${body}\n</body></html>`,
    css_width: vw, css_height: capH, doc_height: docH, image_width: imgW, image_height: imgH, dpr,
  };
}
"""
