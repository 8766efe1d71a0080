// diff.js - word-level differences between two model outputs, for the
// side-by-side example table: the longest common subsequence of words;
// words only in the first are marked removed, only in the second added.

const MAX_WORDS = 2000; // beyond this an O(n*m) table is too big for a page

function words(s) {
  return s.split(/(\s+)/).filter(w => w !== '');
}

// Returns [aParts, bParts]: lists of {text, changed}.
export function wordDiff(a, b) {
  const A = words(a), B = words(b);
  if (A.length > MAX_WORDS || B.length > MAX_WORDS)
    return [[{ text: a, changed: a !== b }], [{ text: b, changed: a !== b }]];
  const n = A.length, m = B.length;
  const L = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const ra = [], rb = [];
  const push = (list, text, changed) => {
    const last = list[list.length - 1];
    if (last && last.changed === changed) last.text += text;
    else list.push({ text, changed });
  };
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (A[i] === B[j]) { push(ra, A[i++], false); push(rb, B[j++], false); }
    else if (L[i + 1][j] >= L[i][j + 1]) push(ra, A[i], !/^\s+$/.test(A[i++]));
    else push(rb, B[j], !/^\s+$/.test(B[j++]));
  }
  while (i < n) push(ra, A[i], !/^\s+$/.test(A[i++]));
  while (j < m) push(rb, B[j], !/^\s+$/.test(B[j++]));
  return [ra, rb];
}

// Renders parts into an element: changed runs as <del> (first) or <ins>.
export function renderDiff(parts, tag) {
  const span = document.createElement('span');
  span.className = 'output';
  for (const p of parts) {
    if (p.changed) {
      const e = document.createElement(tag);
      e.textContent = p.text;
      span.append(e);
    } else {
      span.append(document.createTextNode(p.text));
    }
  }
  return span;
}
