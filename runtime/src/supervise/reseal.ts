/**
 * Runs a clone's reseal (plan/reseal.ts) in the restored guest through the guest agent, with
 * fresh randomness from the host, and reports how long each of its steps took.
 */
import { randomBytes } from "node:crypto";
import { userPasswordHash } from "../config/passwordCrypt.js";
import type { LauncherConfig } from "../config/schema.js";
import type { CloudInitFiles } from "../plan/cloudInit.js";
import { resealScript, type ResealInput } from "../plan/reseal.js";
import { guestExec } from "./guestAgent.js";

/** The reseal's input for this machine: the same users, hashes and seed its cold boot would get. */
export function resealInput(config: LauncherConfig, cloudInit: CloudInitFiles, saltKey: string, capture: { user: string; hostname: string }): ResealInput {
  return {
    hostname: config.hostname,
    users: config.users.map((user) => {
      const passwordHash = userPasswordHash(user, saltKey);
      return { name: user.name, sshKeys: user.sshKeys, sudo: user.sudo, ...(passwordHash !== undefined && { passwordHash }) };
    }),
    userData: config.userData !== undefined,
    seed: { metaData: cloudInit.metaData, userData: cloudInit.userData, networkConfig: cloudInit.networkConfig },
    machineId: randomBytes(16).toString("hex"),
    randomSeed: randomBytes(512).toString("base64"),
    captureUser: capture.user,
    captureHostname: capture.hostname,
  };
}

/** Resolves with the script's step timings (one line per step); rejects when the reseal failed. */
export async function runReseal(guestAgentSocket: string, input: ResealInput, timeoutMs: number): Promise<string> {
  const result = await guestExec(guestAgentSocket, { path: "/bin/sh", args: ["-s"], stdin: resealScript(input) }, timeoutMs);
  if (result.exitCode !== 0) {
    throw new Error(`the reseal script exited with ${result.exitCode}: ${(result.stderr || result.stdout).trim().split("\n").slice(-5).join(" | ")}`);
  }
  const steps = result.stdout.trim().split("\n").map((line) => line.split(" "));
  const t0 = Number(steps[0]?.[0] ?? 0);
  return steps.map(([uptime, ...name]) => `${name.join(" ")} +${(Number(uptime) - t0).toFixed(1)}s`).join(", ");
}
