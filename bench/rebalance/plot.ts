// The SVG chart of bench/rebalance.ts: hit ratio per second of every run on one chart, the change
// (config reload) and the rebalance job's span marked. Hand-written SVG: lines, axes, a legend.
import type { RunRecord } from './summary.ts'
import { hitRatio } from './workload.ts'

const WIDTH = 900
const HEIGHT = 420
const MARGIN = { left: 60, right: 20, top: 58, bottom: 50 }
const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd']

export function hitRatioSvg(runs: RunRecord[], title: string): string {
  // Every complete second of every run, as [second, hit %].
  const series = runs.map((run) => run.workload.seconds.slice(0, -1).map((second, i): [number, number] => [i + 0.5, hitRatio(second) * 100]).filter(([, y]) => !Number.isNaN(y)))
  const lowest = Math.min(...series.flat().map(([, y]) => y))
  const yMin = Math.max(0, Math.floor((lowest - 1) / 5) * 5)
  // Headroom above 100% so that lines at 100% do not run along the frame.
  const yMax = 100 + (100 - yMin) * 0.03
  const xMax = Math.max(...series.map((points) => points.length))
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (s: number) => MARGIN.left + (s / xMax) * plotW
  const y = (percent: number) => MARGIN.top + ((yMax - percent) / (yMax - yMin)) * plotH
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ]
  const yStep = 100 - yMin > 30 ? 10 : 100 - yMin > 5 ? 5 : 1
  for (let p = yMin; p <= 100; p += yStep) {
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(p)}" y2="${y(p)}" stroke="#ddd"/>`, `<text x="${MARGIN.left - 6}" y="${y(p) + 4}" text-anchor="end">${p}%</text>`)
  }
  const xStep = xMax > 60 ? 10 : 5
  for (let s = 0; s <= xMax; s += xStep) out.push(`<text x="${x(s)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${s}</text>`)
  out.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">seconds</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">hit ratio per second</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
  )
  runs.forEach((run, i) => {
    const color = COLORS[i % COLORS.length]
    // Earlier runs drawn wider, so a run that overlaps another (both at 100%) still shows.
    const width = 1.4 + (runs.length - 1 - i) * 1.2
    const top = MARGIN.top + 2
    if (run.job) out.push(`<rect x="${x(run.job.startedAt / 1000)}" y="${top}" width="${x(run.job.endedAt / 1000) - x(run.job.startedAt / 1000)}" height="${plotH - 4}" fill="${color}" opacity="0.08"/>`)
    out.push(`<line x1="${x(run.changeAt / 1000)}" x2="${x(run.changeAt / 1000)}" y1="${top}" y2="${MARGIN.top + plotH}" stroke="${color}" stroke-dasharray="4 3"/>`)
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round" points="${series[i].map(([s, p]) => `${x(s).toFixed(1)},${y(Math.max(yMin, p)).toFixed(1)}`).join(' ')}"/>`)
    const legendX = MARGIN.left + plotW - 290
    const legendY = MARGIN.top + plotH - 12 - (runs.length - 1 - i) * 16
    out.push(`<line x1="${legendX}" x2="${legendX + 20}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${color}" stroke-width="${width}"/>`, `<text x="${legendX + 26}" y="${legendY}">${escape(`${run.name}: ${run.label}`)}</text>`)
  })
  out.push(`<text x="${WIDTH / 2}" y="42" text-anchor="middle" fill="#555">dashed line: config reload 3 → 4 shards; shaded: rebalance job running</text>`, '</svg>')
  return `${out.join('\n')}\n`
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
