// Shop settings in the page: pure functions from the form's strings to an API patch.

const words = (text) => String(text ?? "").split(/[\s,]+/).filter(Boolean);
const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The PATCH body for what the form changed compared with `data` (GET /api/admin/settings'
 * `settings`); unchanged keys are left out. Numbers stay strings the server validates when
 * they are not numbers, so its message names the field.
 */
export function settingsPatch(values, data) {
  const patch = {};
  const extensions = words(values.allowed_extensions).map((e) => (e.startsWith(".") ? e : `.${e}`).toLowerCase());
  if (!sameList(extensions, data.allowed_extensions)) patch.allowed_extensions = extensions;
  const signatures = {};
  for (const [ext, hex] of Object.entries(values.content_signatures ?? {})) {
    signatures[ext] = hex ? hex.replace(/\s+/g, "").toLowerCase() : null;
  }
  const before = data.content_signatures;
  const keys = new Set([...Object.keys(signatures), ...Object.keys(before)]);
  if ([...keys].some((k) => (signatures[k] ?? null) !== (before[k] ?? null))) patch.content_signatures = signatures;
  const pattern = String(values.name_pattern ?? "");
  if (pattern !== (data.name_pattern ?? "")) patch.name_pattern = pattern;
  for (const key of ["max_upload_mb", "stale_lock_hours", "session_hours"]) {
    const number = Number(values[key]);
    if (String(values[key]).trim() === "" || Number.isNaN(number)) patch[key] = values[key];
    else if (number !== data[key]) patch[key] = number;
  }
  const rule = { digits: Number(values.group_digits), keep: Number(values.group_keep) };
  if (rule.digits !== data.group_rule.digits || rule.keep !== data.group_rule.keep) patch.group_rule = rule;
  const origins = words(values.ws_allowed_origins);
  if (!sameList(origins, data.ws_allowed_origins)) patch.ws_allowed_origins = origins;
  return patch;
}

/** "1234567_A1.mcam -> group 12XXXXX, subgroup 1234567" for a group rule. */
export function groupExample(digits, keep) {
  if (!Number.isInteger(digits) || !Number.isInteger(keep) || digits < 1 || keep < 0 || keep > digits) {
    return "A part number has 1 to 20 digits, and the group keeps at most that many.";
  }
  const number = "1234567890123456789012".slice(0, digits);
  const group = number.slice(0, keep) + "X".repeat(digits - keep);
  return `${number}_A1.mcam is in group ${group}, subgroup ${number}; names without ${digits} leading digits are in Misc.`;
}
