/**
 * The link page's 30-day chart as plain SVG geometry (no JavaScript, no chart library): views per day
 * as bars on the left scale, payments per day as dots on stems on the right scale (payments are
 * usually a few per hundred views, so on one scale they would vanish). Each series is a single
 * <path>, so the SVG stays a few hundred bytes whatever the numbers; the template adds the labels,
 * the accessible name and the same numbers as a table.
 */
import { formatMoney } from '../../core/money.ts';
import type { DayStats } from './service.ts';

/** The drawing's own units; the SVG stretches to its box (CSS sets the height). */
const WIDTH = 600;
const HEIGHT = 160;
/** Room above the tallest bar, so the dots of the busiest payment day are not cut at the top. */
const TOP = 8;

export interface ChartRow {
  date: string;
  label: string;
  views: string;
  payments: string;
  revenue: string;
}

export interface DailyChart {
  viewBox: string;
  /** Bars, one subpath each (days without views draw nothing). */
  viewsPath: string;
  /** Per day with payments: a stem up from the baseline, and a dot on top (a zero-length round-capped stroke). */
  paymentsStems: string;
  paymentsDots: string;
  /** Horizontal guides at the top, middle and bottom of the scale. */
  guides: number[];
  viewsMax: number;
  paymentsMax: number;
  firstLabel: string;
  lastLabel: string;
  /** "Views and payments per day, 2 Feb – 3 Mar: 1,234 views, 12 payments". */
  title: string;
  /** The busiest day, for those who cannot see the bars. */
  desc: string;
  rows: ChartRow[];
  totals: { views: string; payments: string; revenue: string };
}

/** The smallest "round" number (1, 1.5, 2, 3, 4, 5, 6, 8 × 10ⁿ, whole) at or above n; 1 for nothing. */
export function niceCeil(n: number): number {
  if (n <= 1) return 1;
  const step = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 1.5, 2, 3, 4, 5, 6, 8, 10]) {
    const v = m * step;
    if (v >= n && Number.isInteger(v)) return v;
  }
  return 10 * step;
}

const count = (n: number) => n.toLocaleString('en');
const plural = (n: number, one: string, many: string) => `${count(n)} ${n === 1 ? one : many}`;
const num = (n: number) => String(Math.round(n * 100) / 100);

/** "3 Mar" for a YYYY-MM-DD that is already a date in the merchant's zone. */
const dayLabel = (date: string, weekday = false) =>
  new Date(`${date}T12:00:00Z`).toLocaleDateString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'short', ...(weekday ? { weekday: 'short' } : {}) });

export function dailyChart(days: DayStats[], currency: string): DailyChart {
  const slot = WIDTH / Math.max(1, days.length);
  const barWidth = slot * 0.7;
  const plot = HEIGHT - TOP;
  const viewsMax = niceCeil(Math.max(0, ...days.map((d) => d.views)));
  const paymentsMax = niceCeil(Math.max(0, ...days.map((d) => d.payments)));
  const bars: string[] = [];
  const stems: string[] = [];
  const dots: string[] = [];
  days.forEach((d, i) => {
    const x = i * slot;
    if (d.views > 0) {
      // At least half a unit high, so a day with one view among thousands still shows.
      const h = Math.max(0.5, (d.views / viewsMax) * plot);
      bars.push(`M${num(x + (slot - barWidth) / 2)} ${HEIGHT}v-${num(h)}h${num(barWidth)}v${num(h)}z`);
    }
    if (d.payments > 0) {
      const cx = num(x + slot / 2);
      const cy = num(HEIGHT - (d.payments / paymentsMax) * plot);
      stems.push(`M${cx} ${HEIGHT}V${cy}`);
      dots.push(`M${cx} ${cy}h0`);
    }
  });
  const totals = days.reduce((t, d) => ({ views: t.views + d.views, payments: t.payments + d.payments, revenue: t.revenue + d.revenue }), { views: 0, payments: 0, revenue: 0 });
  const first = days.length ? dayLabel(days[0].date) : '';
  const last = days.length ? dayLabel(days[days.length - 1].date) : '';
  const busiest = days.reduce<DayStats | null>((b, d) => (d.views > (b?.views ?? 0) ? d : b), null);
  return {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    viewsPath: bars.join(''),
    paymentsStems: stems.join(''),
    paymentsDots: dots.join(''),
    guides: [TOP, TOP + plot / 2, HEIGHT],
    viewsMax,
    paymentsMax,
    firstLabel: first,
    lastLabel: last,
    title: `Views and payments per day, ${first} – ${last}: ${plural(totals.views, 'view', 'views')}, ${plural(totals.payments, 'payment', 'payments')}`,
    desc: busiest ? `Most views on ${dayLabel(busiest.date, true)}: ${count(busiest.views)}.` : 'No views in these 30 days.',
    rows: days.map((d) => ({ date: d.date, label: dayLabel(d.date, true), views: count(d.views), payments: count(d.payments), revenue: formatMoney(d.revenue, currency) })),
    totals: { views: count(totals.views), payments: count(totals.payments), revenue: formatMoney(totals.revenue, currency) },
  };
}
