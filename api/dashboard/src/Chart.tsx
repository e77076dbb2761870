// A time-series chart on uPlot (small, fast, canvas), redrawn in place as points arrive.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import { fmtMs } from "./format";

export interface Series {
  label: string;
  color: string;
  dash?: number[];
}

interface Props {
  title: string;
  series: Series[];
  data: uPlot.AlignedData;
  /** "ms": values are durations in milliseconds; "": plain numbers. */
  unit: "ms" | "";
  testid?: string;
}

function dark(): boolean {
  return document.documentElement.classList.contains("dark");
}

export function Chart({ title, series, data, unit, testid }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(data);
  const key = series.map((s) => s.label).join("|");

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const options = (): uPlot.Options => {
      const axis = dark() ? "#cbd5e1" : "#334155";
      const grid = dark() ? "rgba(148,163,184,0.15)" : "rgba(100,116,139,0.15)";
      return {
      width: Math.max(200, el.clientWidth),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: axis, grid: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid }, size: 72, values: (_u, vals) => vals.map((v) => (unit === "ms" ? fmtMs(v) : `${+v.toFixed(2)}`)) },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash,
          spanGaps: true,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => (v === null ? "–" : unit === "ms" ? fmtMs(v) : `${+v.toFixed(2)}`),
        })),
      ],
      };
    };
    plot.current = new uPlot(options(), latest.current, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    resize.observe(el);
    const theme = new MutationObserver(() => {
      plot.current?.destroy();
      el.replaceChildren();
      plot.current = new uPlot(options(), latest.current, el);
    });
    theme.observe(document.documentElement, { attributes: true, attributeFilter: ["class"] });
    return () => {
      resize.disconnect();
      theme.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- rebuilt only when the series change
  }, [key, unit]);

  useEffect(() => {
    latest.current = data;
    plot.current?.setData(data);
  }, [data]);

  return (
    <section className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900" data-testid={testid}>
      <h3 className="mb-1 text-sm font-semibold text-slate-600 dark:text-slate-300">{title}</h3>
      <div ref={box} className="w-full overflow-hidden" />
    </section>
  );
}
