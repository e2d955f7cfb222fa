/** The plugin's entry: serves the components over Pulumi's provider protocol. */
import { componentProviderHost } from "@pulumi/pulumi/provider/experimental/provider.js";
import { providerOptions } from "./options.js";

// No top-level await: Pulumi's plugin runner (`@pulumi/pulumi/cmd/run-plugin`) loads this entry
// with require(), which Node.js refuses for ES modules that await at the top level.
componentProviderHost(providerOptions()).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
