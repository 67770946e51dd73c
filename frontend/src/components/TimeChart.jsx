// A uPlot time-series chart in React: uPlot owns the canvas, React only hands it data.
// The chart is rebuilt when its series or labels change and fed with setData otherwise,
// so a live chart updating twice a second does not re-create the canvas.
import { useEffect, useRef, useSyncExternalStore } from 'react';
import uPlot from 'uplot';
import { PALETTE, formatTimestamp, formatValue } from '../format.js';

/**
 * Time-axis tick steps in seconds: whole seconds at the finest (readings and buckets are
 * never finer to a person), so a short range gets ":25 :26" instead of ":25.050 :25.100…".
 */
const DARK_QUERY = '(prefers-color-scheme: dark)';

/** 'dark' or 'light', following the system setting live (the chart is redrawn on a change). */
function useColorScheme() {
  return useSyncExternalStore(
    (onChange) => {
      const media = globalThis.matchMedia?.(DARK_QUERY);
      media?.addEventListener('change', onChange);
      return () => media?.removeEventListener('change', onChange);
    },
    () => (globalThis.matchMedia?.(DARK_QUERY).matches ? 'dark' : 'light'),
  );
}

/** A colour variable of styles.css (uPlot draws on a canvas, which CSS does not reach). */
function cssColor(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

const TIME_INCRS = [
  1, 2, 5, 10, 15, 30,
  60, 120, 300, 600, 900, 1800,
  3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600,
  86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400,
];

/**
 * `data` is uPlot's column form `[xs (unix seconds), ys…]` with null for gaps; `spanGaps`
 * joins across nulls (live charts, where devices report at different instants) instead of
 * breaking the line (query charts, where a null bucket means no readings).
 */
export default function TimeChart({
  data, seriesNames, xLabel = 'Time (local)', yLabel, height = 300, ariaLabel, spanGaps = false,
}) {
  const containerRef = useRef(null);
  const plotRef = useRef(null);
  const dataRef = useRef(data);
  dataRef.current = data;
  const seriesKey = seriesNames.join('\u0000');

  const scheme = useColorScheme();

  useEffect(() => {
    const el = containerRef.current;
    if (!el) return undefined;
    const axis = cssColor('--chart-axis', '#374151');
    const grid = cssColor('--chart-grid', '#e5e7eb');
    const opts = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: true } },
      axes: [
        { label: xLabel, stroke: axis, grid: { stroke: grid }, incrs: TIME_INCRS },
        {
          label: yLabel,
          stroke: axis,
          grid: { stroke: grid },
          size: 70,
          values: (u, ticks) => ticks.map((v) => formatValue(v)),
        },
      ],
      series: [
        { label: 'Time', value: (u, v) => (v === null || v === undefined ? '—' : formatTimestamp(v)) },
        ...seriesNames.map((name, i) => ({
          label: name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps,
          // uPlot's default: dots only where readings are sparse (a lone bucket between gaps
          // would otherwise not show at all).
          value: (u, v) => formatValue(v),
        })),
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
    };
    const plot = new uPlot(opts, dataRef.current, el);
    plotRef.current = plot;
    const observer = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(200, el.clientWidth), height });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
      plotRef.current = null;
    };
    // Rebuild only when the chart's shape changes; data flows in through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seriesKey, xLabel, yLabel, height, spanGaps, scheme]);

  useEffect(() => {
    plotRef.current?.setData(data);
  }, [data]);

  return <div className="chart" ref={containerRef} role="img" aria-label={ariaLabel ?? yLabel} />;
}
