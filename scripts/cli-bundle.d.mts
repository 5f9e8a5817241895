// Types of scripts/cli-bundle.mjs (plain JavaScript: it runs before anything compiles TypeScript).
export declare const CLI_DIR: string;
export declare const ENTRIES: Readonly<Record<string, string>>;
/** The entry of the current build if no source changed since it was built. */
export declare function currentCliEntry(name?: string): string | undefined;
/** Builds now, makes the build current, returns its perfpilot entry. */
export declare function buildCliBundle(): Promise<string>;
/** The perfpilot entry of a fresh build, building one if needed. */
export declare function freshCliBundle(): Promise<string>;
