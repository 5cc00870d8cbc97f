// Builds the console's assets into src/apishield/console/static (committed, so that a
// Python install needs no Node.js): the hand-written module bundled with uPlot and
// minified, the stylesheet minified, uPlot's stylesheet and licence and the icon copied.
//   npm ci && npm run build
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here("../src/apishield/console/static/");

await mkdir(out, { recursive: true });
await build({
  entryPoints: [here("src/console.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "eof",
  banner: { js: "/* apishield console; bundles uPlot (MIT licence, see uPlot.LICENSE.txt) */" },
  outfile: out + "console.js",
});
await build({
  entryPoints: [here("src/console.css")],
  minify: true,
  outfile: out + "console.css",
});
await copyFile(here("node_modules/uplot/dist/uPlot.min.css"), out + "uPlot.min.css");
await copyFile(here("node_modules/uplot/LICENSE"), out + "uPlot.LICENSE.txt");
await copyFile(here("src/favicon.svg"), out + "favicon.svg");
