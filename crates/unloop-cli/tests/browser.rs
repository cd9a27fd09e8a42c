//! `diagnose -o html` in a real browser: Debian's headless Chromium (installed by
//! `testbed/browser.sh`, which `testbed/test-all.sh` runs first) renders the report of a captured
//! bundle with hostile text planted in it. The page is screenshotted, and its DOM after scripts
//! ran shows the verdict and the restart timeline, the hostile text as text, and no planted
//! script run. Needs the `e2e` feature (a browser, like the testbed, is outside cargo).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{repo_root, unloop};

/// Planted where the report prints cluster text: each would run if written unescaped, and each
/// computes its marker ('PWN' + 'ED') so the marker is in the DOM only if it ran.
const IN_NAME: &str = "<script>document.title='PWN'+'ED'</script>";
const IN_MESSAGE: &str = "</style></pre><script>document.body.setAttribute('data-x','PWN'+'ED')</script><img src=x onerror=\"document.body.dataset.y='PWN'+'ED'\">";
const IN_EVENT: &str = "\" onmouseover=\"alert(1)\" x='";

fn hostile_bundle(dir: &Path) -> PathBuf {
    let src = repo_root().join("testbed/scenarios/command-not-found/bundle.json.gz");
    let bytes = std::fs::read(src).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_reader(flate2::read::GzDecoder::new(&bytes[..])).unwrap();
    let state = &mut json["state"];
    let name = format!("api-{IN_NAME}");
    state["pods"][0]["metadata"]["name"] = name.clone().into();
    state["logs"][0]["pod"] = name.into();
    // The termination message, which the report prints whole (the log shows only its matches).
    state["pods"][0]["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] =
        IN_MESSAGE.into();
    for e in state["events"].as_array_mut().unwrap() {
        if e["reason"] == "BackOff" {
            let m = e["message"].as_str().unwrap().to_string();
            e["message"] = format!("{m} {IN_EVENT}").into();
        }
    }
    let p = dir.join("hostile.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    serde_json::to_writer(&mut gz, &json).unwrap();
    gz.finish().unwrap();
    p
}

/// Headless Chromium with nothing that talks to the network on its own, its profile in `dir`.
fn chromium(dir: &Path, args: &[&str]) -> std::process::Output {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("Chromium is not installed: run testbed/browser.sh (apt-get install -y chromium)");
    let profile = dir.join("profile");
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-breakpad",
            "--hide-scrollbars",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_html_report_renders_in_chromium_with_verdict_and_timeline_and_runs_no_planted_script() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = hostile_bundle(&dir);
    let o = unloop(&["diagnose", "--from", bundle.to_str().unwrap(), "-o", "html"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = dir.join("report.html");
    std::fs::write(&page, &o.stdout).unwrap();
    let url = format!("file://{}", page.display());

    let shot = dir.join("report.png");
    chromium(
        &dir,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
            &url,
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1280, 1600), "screenshot size");
    // A blank page of this size compresses to a few kilobytes; text, bars and colour do not.
    assert!(
        png.len() > 40_000,
        "screenshot is only {} bytes: {}",
        png.len(),
        shot.display()
    );

    let dom = chromium(&dir, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    std::fs::write(dir.join("dom.html"), dom.as_bytes()).unwrap();
    // The page's own script ran (so a planted one would have had its chance)...
    assert!(
        dom.contains("data-script=\"ran\""),
        "page script did not run"
    );
    // ...and no planted one did, nor an inline handler.
    assert!(!dom.contains("PWNED"), "a planted script ran:\n{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "one script element");
    assert!(!dom.contains("<img"), "a planted element was parsed");
    // The hostile text shows, as text.
    for shown in [
        "api-&lt;script&gt;document.title='PWN'+'ED'&lt;/script&gt;",
        "&lt;/style&gt;&lt;/pre&gt;&lt;script&gt;",
        "\" onmouseover=\"alert(1)\" x='",
    ] {
        assert!(dom.contains(shown), "{shown:?} not shown as text:\n{dom}");
    }
    // The verdict, with its evidence and remedies.
    let verdict = dom
        .split("<div class=\"verdict\">")
        .nth(1)
        .expect("no verdict");
    assert!(verdict.contains(">command-not-found</span>"), "{verdict}");
    assert!(verdict.contains("sh: migrate-db: not found"), "{verdict}");
    assert!(dom.contains("<button class=\"copy\""), "no copy button");
    // The restart timeline: six runs, the delays growing, the wait in progress and the retry.
    let timeline = dom
        .split("<div class=\"timeline\"")
        .nth(1)
        .expect("no timeline")
        .split("</div>\n<p")
        .next()
        .unwrap();
    assert_eq!(timeline.matches("class=\"seg run").count(), 6, "{timeline}");
    for label in [
        "run 6: 0.0s, exit 127 (Error)",
        ">10s<",
        ">20s<",
        ">40s<",
        ">1m20s<",
        "waits 2m40s",
        ">now<",
        "next retry at 20:51:32 UTC (in 1m05s)",
    ] {
        assert!(timeline.contains(label), "{label:?} not in\n{timeline}");
    }
}
