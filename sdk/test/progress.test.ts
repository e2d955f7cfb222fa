import assert from "node:assert/strict";
import { test } from "node:test";
import { throttleProgress, type WaitState } from "../src/index.js";

test("throttleProgress passes on the first state, every change, and otherwise one state per period", () => {
  const passed: number[] = [];
  const onProgress = throttleProgress(15, (state) => passed.push(state.seconds));
  const poll = (seconds: number, health = "starting", status = "running") => onProgress({ status, health, seconds } satisfies WaitState);
  for (const seconds of [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33]) poll(seconds);
  poll(34, "healthy");
  poll(36, "healthy", "restarting");
  poll(39, "healthy", "restarting");
  assert.deepEqual(passed, [0, 15, 30, 34, 36]);
});
