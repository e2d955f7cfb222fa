/** The configuration rules, shared by the launcher and the Pulumi components. */
export * from "./console.js";
export * from "./fields.js";
export * from "./ports.js";
export * from "./schema.js";
export * from "./sshKeys.js";
export * from "./units.js";
export * from "./userData.js";
export * from "./vnc.js";
