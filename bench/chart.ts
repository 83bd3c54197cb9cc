// The benchmark's chart, as plain SVG text (no dependency): throughput by
// scenario on a log scale, and the handoff latency of the hot-name scenario.

interface ChartInput {
  date: string;
  mode: string;
  machine: { cpu: string; cores: number; server: string };
  results: Array<{ scenario: string; contender: string; summary: { cyclesPerSec: number; p50: number; p99: number } }>;
}

const CONTENDERS: Array<[key: string, label: string, color: string]> = [
  ['locktable', 'locktable', '#1f6fb4'],
  ['original', 'original: read + CAS, 100 ms retry', '#d1495b'],
  ['bare', 'bare UPDATE x2 (the limit)', '#8d8d8d'],
  ['getlock', 'GET_LOCK, held connection', '#2e9e5b'],
];
const THROUGHPUT: Array<[scenario: string, label: string]> = [
  ['callers-1', '1 caller'],
  ['callers-4', '4 callers'],
  ['callers-16', '16 callers'],
  ['callers-64', '64 callers'],
  ['processes-16', '16 processes'],
  ['held-100', '100 held'],
  ['held-1000', '1,000 held'],
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}k` : v >= 10 ? v.toFixed(0) : v.toFixed(1));

/** A log-scale bar panel: groups of bars, one bar per series. */
function panel(o: {
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
  unit: string;
  groups: string[];
  series: Array<{ color: string; values: Array<number | undefined> }>;
}): string {
  const out: string[] = [];
  const all = o.series.flatMap((s) => s.values).filter((v): v is number => v !== undefined && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const yOf = (v: number) => o.y + o.h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * o.h;
  out.push(`<text x="${o.x}" y="${o.y - 12}" class="t">${esc(o.title)}</text>`);
  for (let d = lo; d <= hi; d *= 10) {
    const yy = yOf(d).toFixed(1);
    out.push(`<line x1="${o.x}" x2="${o.x + o.w}" y1="${yy}" y2="${yy}" class="g"/><text x="${o.x - 6}" y="${yy}" class="a" text-anchor="end" dy="4">${fmt(d)}</text>`);
  }
  out.push(`<text x="${o.x - 44}" y="${o.y + o.h / 2}" class="a" transform="rotate(-90 ${o.x - 44} ${o.y + o.h / 2})" text-anchor="middle">${esc(o.unit)}</text>`);
  const gw = o.w / o.groups.length;
  const bw = (gw * 0.8) / o.series.length;
  o.groups.forEach((g, gi) => {
    const gx = o.x + gi * gw + gw * 0.1;
    o.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === undefined || !(v > 0)) return;
      const bx = gx + si * bw;
      const by = yOf(v);
      out.push(`<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(o.y + o.h - by).toFixed(1)}" fill="${s.color}"><title>${fmt(v)}</title></rect>`);
      out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${(by - 3).toFixed(1)}" class="v" text-anchor="middle">${fmt(v)}</text>`);
    });
    out.push(`<text x="${(gx + gw * 0.4).toFixed(1)}" y="${o.y + o.h + 16}" class="a" text-anchor="middle">${esc(g)}</text>`);
  });
  out.push(`<line x1="${o.x}" x2="${o.x + o.w}" y1="${o.y + o.h}" y2="${o.y + o.h}" class="x"/>`);
  return out.join('\n');
}

export function renderChart(report: ChartInput): string {
  const get = (scenario: string, contender: string) => report.results.find((r) => r.scenario === scenario && r.contender === contender)?.summary;
  const W = 960;
  const H = 640;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.t{font-size:14px;font-weight:600}.a{font-size:11px;fill:#444}.v{font-size:9px;fill:#222}.g{stroke:#e4e4e4}.x{stroke:#888}.s{font-size:11px;fill:#666}</style>',
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="20" y="24" class="t">locktable benchmark: acquire + release cycles on distinct names (higher is better)</text>`,
    `<text x="20" y="42" class="s">${esc(`${report.date.slice(0, 16).replace('T', ' ')} UTC, ${report.mode} run; ${report.machine.cores} x ${report.machine.cpu}; ${report.machine.server}; client and server on one machine`)}</text>`,
  );
  parts.push(
    panel({
      x: 80,
      y: 80,
      w: W - 110,
      h: 280,
      title: 'Throughput by scenario',
      unit: 'cycles/s (log)',
      groups: THROUGHPUT.map(([, l]) => l),
      series: CONTENDERS.map(([key, , color]) => ({ color, values: THROUGHPUT.map(([s]) => get(s, key)?.cyclesPerSec) })),
    }),
  );
  const lockers = CONTENDERS.filter(([key]) => key !== 'bare');
  parts.push(
    panel({
      x: 80,
      y: 440,
      w: 420,
      h: 150,
      title: 'Handoff to a waiter in another process (lower is better)',
      unit: 'ms (log)',
      groups: ['median', 'p99'],
      series: lockers.map(([key, , color]) => ({ color, values: [get('handoff-16', key)?.p50, get('handoff-16', key)?.p99] })),
    }),
  );
  CONTENDERS.forEach(([, label, color], i) => {
    const y = 460 + i * 22;
    parts.push(`<rect x="560" y="${y - 10}" width="14" height="14" fill="${color}"/><text x="582" y="${y + 1}" class="a">${esc(label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
