/**
 * The container description of one machine as a Pulumi output, built once per machine:
 * at once when every argument is a plain value (so a bad one throws before anything is
 * created), otherwise when the arguments resolve (still during preview when they are known).
 */
import * as pulumi from "@pulumi/pulumi";
import type { DevMachineArgs } from "./args.js";
import type { ContainerSpec, MachineSettings, SpecContext } from "./description.js";
import { secretArguments } from "./secrets.js";
import { containerSpec } from "./spec/containerSpec.js";

export function machineSpec(name: string, args: DevMachineArgs, context: SpecContext = {}): pulumi.Output<ContainerSpec> {
  // Plain values hold no outputs, so no secrets either.
  if (isPlain(args)) return pulumi.output(containerSpec(name, args as MachineSettings, context));
  // The description is built from unsecreted settings, so that what holds no secret stays
  // readable; which settings were secret is remembered first, and what they flow into is
  // marked secret again (containerArgs, the outputs, the `spec` getter).
  const secretSettings = secretArguments(args);
  const settings = pulumi.unsecret(pulumi.output(args)) as pulumi.Output<MachineSettings>;
  return pulumi.all([settings, secretSettings]).apply(([s, secrets]) => containerSpec(name, s, { ...context, secretSettings: secrets }));
}

/** True when a value holds no outputs or promises anywhere, so it can be validated right away. */
export function isPlain(value: unknown): boolean {
  if (value === null || typeof value !== "object") return true;
  if (pulumi.Output.isInstance(value) || value instanceof Promise || pulumi.Resource.isInstance(value)) return false;
  return Object.values(value as Record<string, unknown>).every(isPlain);
}
