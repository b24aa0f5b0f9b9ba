// What `npm pack` puts in the tarball: the built library, its types, and source maps whose
// sources travel with them. (`--ignore-scripts` lists the current build without rebuilding dist/
// under the running tests; `prepack` is what makes a real `npm pack` build first.)
import * as assert from "node:assert/strict";
import * as childProcess from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";

import { PACKAGE_DIR } from "../test-support/support";

interface PackageJson {
  main: string;
  types: string;
  scripts: Record<string, string>;
}

function packedFiles(): Set<string> {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const out = childProcess.execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: PACKAGE_DIR,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
  });
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  assert.ok(report !== undefined, out);
  return new Set(report.files.map((file) => file.path));
}

it("npm pack builds first: prepack runs the build", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_DIR, "package.json"), "utf8")) as PackageJson;
  assert.equal(pkg.scripts["prepack"], "npm run build");
});

it("the tarball holds the entry points, and every source map's sources", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_DIR, "package.json"), "utf8")) as PackageJson;
  const files = packedFiles();
  for (const entry of [pkg.main, pkg.types]) {
    assert.ok(files.has(path.posix.normalize(entry)), `${entry} is not packed: ${[...files].join(", ")}`);
  }
  const maps = [...files].filter((file) => file.endsWith(".map"));
  assert.ok(maps.some((file) => file.endsWith(".js.map")), "no JavaScript source maps packed");
  assert.ok(maps.some((file) => file.endsWith(".d.ts.map")), "no declaration maps packed");
  for (const map of maps) {
    const { sources } = JSON.parse(fs.readFileSync(path.join(PACKAGE_DIR, map), "utf8")) as { sources: string[] };
    for (const source of sources) {
      const packedPath = path.posix.join(path.posix.dirname(map), source);
      assert.ok(files.has(packedPath), `${map} points at ${packedPath}, which is not packed`);
    }
  }
  assert.ok(![...files].some((file) => file.startsWith("dist/test")), "test builds are packed");
});
