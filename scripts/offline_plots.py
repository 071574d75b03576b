"""Write the HTML template that makes `dvc plots show` / `dvc plots diff` draw every chart offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so its charts are blank on a
machine without network. This template carries the three libraries inline (vl-convert-python's
`javascript_bundle()`, which also sets `window.vegaEmbed`) and leaves out DVC's `{scripts}`
placeholder, so no CDN address is written into the page. `.dvc/config` points `plots.html_template`
at the file; it is committed, so users need neither vl-convert nor a network.

    pip install vl-convert-python && python scripts/offline_plots.py   # regenerate
"""
import argparse
from pathlib import Path

VEGA_LITE = "5.21"  # DVC's plot templates are vega-lite v5 specs

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- vega {vega}, vega-lite {vega_lite}, vega-embed {embed}, inlined by scripts/offline_plots.py -->
    <script>
__BUNDLE__
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main():
    import vl_convert as vlc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".dvc/plots_template.html")
    args = ap.parse_args()
    bundle = vlc.javascript_bundle(vl_version=f"v{VEGA_LITE}")
    # An inline script ends at the first "</script"; DVC fills the page by plain text replacement.
    bundle = bundle.replace("</script", "<\\/script")
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:
            raise SystemExit(f"error: the bundle contains DVC's placeholder {placeholder}")
    page = (PAGE.replace("{vega}", vlc.get_vega_version()).replace("{vega_lite}", VEGA_LITE)
            .replace("{embed}", vlc.get_vega_embed_version()).replace("__BUNDLE__", bundle))
    Path(args.out).write_text(page, encoding="utf-8")
    print(f"{args.out}: {len(page) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
