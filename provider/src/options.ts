/**
 * What the plugin hosts: the components of `@devmachines/pulumi`, whose TypeScript
 * source the analyzer reads (it needs `<dirname>/tsconfig.json` and `src/index.ts`),
 * so the schema comes from the one place the components are written.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { DevMachine, DevMachineGroup } from "@devmachines/pulumi";
import type { ComponentProviderOptions } from "@pulumi/pulumi/provider/experimental/provider.js";

/** The Pulumi package name: resource types are `devmachines:index:DevMachine` and `devmachines:index:DevMachineGroup`. */
export const PACKAGE_NAME = "devmachines";

/** The sdk package's folder (where its package.json and tsconfig.json are), found the way Node finds the package. */
export function sdkDir(): string {
  // .../sdk/dist/index.js -> .../sdk
  return dirname(dirname(fileURLToPath(import.meta.resolve("@devmachines/pulumi"))));
}

export function providerOptions(): ComponentProviderOptions {
  return { name: PACKAGE_NAME, components: [DevMachine, DevMachineGroup], dirname: sdkDir() };
}
