// The settings form's pure logic: only what changed goes into the PATCH.
import assert from "node:assert/strict";
import { test } from "node:test";

import { groupExample, settingsPatch } from "../../src/camvault/web/static/js/shop.js";

const DATA = {
  allowed_extensions: [".mcam", ".nc"],
  content_signatures: { ".mcam": "894844460d0a1a0a" },
  name_pattern: null,
  max_upload_mb: 2048,
  stale_lock_hours: 24,
  session_hours: 12,
  group_rule: { digits: 7, keep: 2 },
  ws_allowed_origins: [],
};
const FORM = {
  allowed_extensions: ".mcam .nc",
  content_signatures: { ".mcam": "894844460d0a1a0a", ".nc": "" },
  name_pattern: "",
  max_upload_mb: "2048",
  stale_lock_hours: "24",
  session_hours: "12",
  group_digits: "7",
  group_keep: "2",
  ws_allowed_origins: "",
};

test("an untouched form changes nothing", () => {
  assert.deepEqual(settingsPatch(FORM, DATA), {});
});

test("only the edited fields are sent, normalized", () => {
  const patch = settingsPatch({ ...FORM, allowed_extensions: "MCAM, .nc vnc", stale_lock_hours: "4",
    name_pattern: "\\d{7}.*", group_keep: "3", content_signatures: { ".mcam": "", ".nc": "25 " } }, DATA);
  assert.deepEqual(patch, {
    allowed_extensions: [".mcam", ".nc", ".vnc"],
    content_signatures: { ".mcam": null, ".nc": "25" },
    name_pattern: "\\d{7}.*",
    stale_lock_hours: 4,
    group_rule: { digits: 7, keep: 3 },
  });
});

test("a number that is not one goes to the server, which names the field", () => {
  assert.deepEqual(settingsPatch({ ...FORM, max_upload_mb: "lots" }, DATA), { max_upload_mb: "lots" });
});

test("clearing the pattern sends an empty one", () => {
  assert.deepEqual(settingsPatch(FORM, { ...DATA, name_pattern: "x.*" }), { name_pattern: "" });
});

test("the group example follows the rule", () => {
  assert.match(groupExample(7, 2), /1234567_A1\.mcam is in group 12XXXXX, subgroup 1234567/);
  assert.match(groupExample(5, 3), /12345_A1\.mcam is in group 123XX, subgroup 12345/);
  assert.match(groupExample(3, 5), /at most/);
});
