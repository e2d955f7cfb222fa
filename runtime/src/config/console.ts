/**
 * The consoles' settings: CONSOLE_PORT turns on the launcher's small HTTP server (serial
 * console and noVNC in the browser); CONSOLE_TOKEN / CONSOLE_TOKEN_FILE is its secret.
 */
import { z } from "zod";

/** The console server's configuration. Without a token the launcher generates one at start. */
export interface ConsoleConfig {
  /** Container port of the HTTP server. */
  port: number;
  token?: string;
}

export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 512;

export const consolePortField = z
  .string()
  .regex(/^\d{1,5}$/, "must be a port number from 1 to 65535")
  .transform(Number)
  .refine((port) => port >= 1 && port <= 65535, "must be a port number from 1 to 65535");

/**
 * The token travels in an `Authorization` header, a URL query and a cookie: printable ASCII
 * without spaces, quotes, `;`, `,` or `\` keeps it the same in all three.
 */
export const consoleTokenField = z
  .string()
  .min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters long`)
  .max(MAX_TOKEN_LENGTH, `must be at most ${MAX_TOKEN_LENGTH} characters long`)
  .regex(/^[A-Za-z0-9._~+/=:@!$&'()*-]+$/, "may hold only letters, digits and . _ ~ + / = : @ ! $ & ' ( ) * - (no spaces, quotes, ; , or \\)");
