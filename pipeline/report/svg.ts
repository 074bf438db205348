/**
 * Dependency-free SVG line charts for the run report and the sweep (self-contained: the report
 * must open on an air-gapped hospital workstation, so no scripts, fonts or CDNs).
 */

export interface Series {
  name: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
  color?: string;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  logX?: boolean;
  yMin?: number;
  yMax?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/** Render series as an SVG line chart with optional error bars (lo/hi) and a legend. */
export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 640, H = o.height ?? 360;
  const m = { l: 60, r: 150, t: 36, b: 48 };
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const tx = (x: number) => (o.logX ? Math.log10(x) : x);
  const xs = pts.map((p) => tx(p.x));
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x1 + 1];
  const ys = pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]);
  let y0 = o.yMin ?? Math.min(...ys), y1 = o.yMax ?? Math.max(...ys);
  if (!(y1 > y0)) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number) => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="20" text-anchor="middle" font-size="14">${
      esc(o.title)
    }</text>`,
  ];
  for (const v of niceTicks(y0, y1)) {
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${py(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  const xt = o.logX
    ? niceTicks(Math.floor(x0), Math.ceil(x1), Math.max(1, Math.ceil(x1) - Math.floor(x0)))
      .map((e) => 10 ** e)
    : niceTicks(x0, x1);
  for (const v of xt) {
    const x = px(v);
    if (x < m.l - 1 || x > W - m.r + 1) continue;
    parts.push(`<text x="${x}" y="${H - m.b + 16}" text-anchor="middle">${v}</text>`);
  }
  parts.push(
    `<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${
      esc(o.yLabel)
    }</text>`,
  );
  series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length];
    const ok = s.points.filter((p) => Number.isFinite(p.y));
    const d = ok.map((p, j) => `${j ? "L" : "M"}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`)
      .join(" ");
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    if (ok.length > 1) {
      parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`);
    }
    for (const p of ok) {
      if (p.lo !== undefined && p.hi !== undefined) {
        parts.push(
          `<line x1="${px(p.x)}" x2="${px(p.x)}" y1="${py(p.lo)}" y2="${py(p.hi)}" stroke="${c}"/>`,
        );
      }
      if (ok.length < 40) parts.push(`<circle cx="${px(p.x)}" cy="${py(p.y)}" r="3" fill="${c}"/>`);
    }
    const ly = m.t + 16 * i;
    parts.push(
      `<line x1="${W - m.r + 10}" x2="${
        W - m.r + 30
      }" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`,
      `<text x="${W - m.r + 36}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}
