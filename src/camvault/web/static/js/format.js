// Pure formatting helpers: sizes, times, durations.

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 1536 -> "1.5 KB" (powers of 1024, as Windows Explorer shows them). */
export function humanSize(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** A duration in ms as "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago". */
export function relative(iso, now) {
  const ms = now - Date.parse(iso);
  if (ms < 45_000) return "just now";
  return `${duration(ms)} ago`;
}

/** The exact local time, for hover titles. */
export function exact(iso) {
  return new Date(iso).toLocaleString();
}

/** "12.5 MB/s" from bytes and seconds. */
export function speed(bytes, seconds) {
  if (seconds <= 0) return "";
  return `${humanSize(bytes / seconds)}/s`;
}
