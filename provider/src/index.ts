/** The plugin's entry: serves the components over Pulumi's provider protocol. */
import { componentProviderHost } from "@pulumi/pulumi/provider/experimental/provider.js";
import { providerOptions } from "./options.js";

await componentProviderHost(providerOptions());
