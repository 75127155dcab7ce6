//! Sets whose entries come from list files: read at ignite, reloaded while the app runs,
//! and a bad or missing file never replaces the last good list.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rocket::http::Status;
use rocket::local::blocking::Client;

fn config(list: &Path) -> String {
    format!(
        r#"
        [default.allow]
        rules = [{{ allow = "@listed" }}, {{ deny = "all" }}]
        [default.allow.sets]
        listed = {{ file = "{}" }}
        "#,
        list.display()
    )
}

/// Waits (10 s at most) until `peer` gets `want`.
fn wait_for(client: &Client, peer: &str, want: Status) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(client, peer, &[]);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{peer}: still {got}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn list(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("list.txt");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_list_file_is_read_at_ignite() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(
        dir.path(),
        "# office\n203.0.113.0/24\n\n  2001:db8::/32  # v6\n198.51.100.7\n",
    );
    let client = client(app(&config(&path)));
    for peer in ["203.0.113.9:1", "[2001:db8::5]:1", "198.51.100.7:1"] {
        assert_eq!(status(&client, peer, &[]), Status::Ok, "{peer}");
    }
    assert_eq!(status(&client, "198.51.100.8:1", &[]), Status::Forbidden);
}

#[test]
fn relative_paths_are_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "203.0.113.0/24\n");
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = PathBuf::from(format!("{up}{}", path.strip_prefix("/").unwrap().display()));
    assert!(relative.is_relative());
    let client = client(app(&config(&relative)));
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
}

#[test]
fn a_bad_or_missing_file_fails_ignite_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "10.0.0.1\n# fine\n10.0.0.0/33\n");
    let err = ignite_error(
        app(&config(&path)),
        &["allow.sets.listed.file", "list.txt:3", "10.0.0.0/33"],
    );
    assert!(err.contains("prefix"), "{err}");
    let path = list(dir.path(), "10.0.0.1\n@office\n");
    ignite_error(app(&config(&path)), &["list.txt:2", "@office"]);
    let missing = dir.path().join("nope.txt");
    ignite_error(
        app(&config(&missing)),
        &["allow.sets.listed.file", "nope.txt"],
    );
}

#[test]
fn edits_are_picked_up_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "203.0.113.0/24\n");
    let client = client(app(&config(&path)));
    assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Forbidden);
    // Written in place.
    fs::write(&path, "203.0.113.0/24\n198.51.100.7\n").unwrap();
    wait_for(&client, "198.51.100.7:1", Status::Ok);
    // Replaced atomically, the way editors and deploy tools do.
    let tmp = dir.path().join("list.txt.tmp");
    fs::write(&tmp, "198.51.100.7\n").unwrap();
    fs::rename(&tmp, &path).unwrap();
    wait_for(&client, "203.0.113.9:1", Status::Forbidden);
    assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Ok);
    // Truncated, then written.
    {
        use std::io::Write;
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(b"192.0.2.0/24\n").unwrap();
    }
    wait_for(&client, "192.0.2.1:1", Status::Ok);
    wait_for(&client, "198.51.100.7:1", Status::Forbidden);
}

#[test]
fn a_bad_version_keeps_the_last_good_list_until_a_good_one_comes() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "203.0.113.0/24\n");
    let client = client(app(&config(&path)));
    // A bad line: nothing of the new version is used, and the log names the line.
    fs::write(&path, "198.51.100.7\nnot an address!\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged("list.txt:2").is_empty() {
        assert!(Instant::now() < deadline, "no error naming list.txt:2");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Forbidden);
    // Deleted: still the last good list. Recreated: picked up.
    fs::remove_file(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged("is gone").is_empty() {
        assert!(Instant::now() < deadline, "the deletion was not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    fs::write(&path, "198.51.100.7\n").unwrap();
    wait_for(&client, "198.51.100.7:1", Status::Ok);
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Forbidden);
}

#[test]
fn a_list_rewritten_in_place_is_never_seen_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "203.0.113.0/24\n198.51.100.7\n");
    let client = client(app(&config(&path)));
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            // Truncate, write up to a line boundary, pause, finish: as `cat > file` from a
            // slow producer would.
            let mut f = fs::File::create(&path).unwrap();
            f.write_all(b"203.0.113.0/24\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            f.write_all(b"198.51.100.7\n192.0.2.1\n").unwrap();
        })
    };
    // Meanwhile 198.51.100.7 must never be refused; then the full new version arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&client, "192.0.2.1:1", &[]) != Status::Ok {
        assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Ok);
        assert!(Instant::now() < deadline, "the new version never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.join().unwrap();
}

#[test]
fn a_named_pipe_at_the_path_does_not_stop_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "203.0.113.0/24\n");
    let client = client(app(&config(&path)));
    fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged("is not a regular file").is_empty() {
        assert!(Instant::now() < deadline, "the pipe was not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    let tmp = dir.path().join("new.txt");
    fs::write(&tmp, "198.51.100.7\n").unwrap();
    fs::rename(&tmp, &path).unwrap();
    wait_for(&client, "198.51.100.7:1", Status::Ok);
}

#[test]
fn a_leading_byte_order_mark_is_not_part_of_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = list(dir.path(), "\u{feff}203.0.113.0/24\n198.51.100.7\n");
    let client = client(app(&config(&path)));
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Ok);
    assert_eq!(status(&client, "198.51.100.7:1", &[]), Status::Ok);
    // And on reload, as Windows editors save it.
    let tmp = dir.path().join("list.txt.tmp");
    fs::write(&tmp, "\u{feff}192.0.2.0/24\r\n").unwrap();
    fs::rename(&tmp, &path).unwrap();
    wait_for(&client, "192.0.2.1:1", Status::Ok);
    assert_eq!(status(&client, "203.0.113.9:1", &[]), Status::Forbidden);
}
