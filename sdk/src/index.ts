/**
 * DevMachines for Pulumi: real QEMU virtual machines as Docker containers.
 *
 * `DevMachine` and `DevMachineGroup` are the components; `containerSpec` is the plain
 * container description they deploy, and `runContainerSpec` runs that description on a
 * Docker Engine without Pulumi.
 */
export * from "./args.js";
export { DevMachine, type DevMachineOptions } from "./devMachine.js";
export { DevMachineGroup, type DevMachineGroupOptions } from "./group.js";
export { containerArgs, volumeArgs } from "./container.js";
export * from "./description.js";
export { containerSpec } from "./spec/containerSpec.js";
export { DevMachineConfigError } from "./spec/errors.js";
export { defaultHostname } from "./spec/hostname.js";
export * from "./placement.js";
export * from "./inventory.js";
export * from "./run.js";
export * from "./defaults.js";
export * from "./progress.js";
