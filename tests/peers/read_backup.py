#!/usr/bin/env python3
"""Read an iPhone backup folder with a third-party Python reader, as a peer check.

    python read_backup.py READER BACKUP_DIR [--password-file FILE] --out OUTDIR

READER is one of: iphone-backup-decrypt, iosbackup, pyiosbackup, mvt.
BACKUP_DIR is the per-phone folder (named by UDID) inside a backup root.

For the three library readers, the backup is opened and every Manifest.db row
is listed through the library's own API, then every regular file is extracted
through the library's own extraction API to OUTDIR/<domain>/<relativePath>.
For mvt, `mvt-ios check-backup` is run (after `mvt-ios decrypt-backup` into
OUTDIR/decrypted when a password is given) and its exit code and ERROR /
CRITICAL log lines are reported.

Prints exactly one JSON line on stdout:
    {"reader", "entries", "files", "bytes", "ok", "error", "notes"}
  entries: Manifest.db rows the reader listed
  files:   regular files extracted (mvt: regular-file rows it listed)
  bytes:   total size of those files (mvt: sum of their recorded Size)
Exits 0 only when ok. Whatever the libraries print goes to stderr.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import traceback

READERS = ("iphone-backup-decrypt", "iosbackup", "pyiosbackup", "mvt")


class Failed(Exception):
    """A check failed; the message goes into the JSON "error" field."""


def extracted_size(path):
    """Size of one extracted file; a missing or non-regular output is a failure."""
    if not os.path.isfile(path):
        raise Failed(f"reader wrote no regular file at {path}")
    return os.path.getsize(path)


# --- iphone-backup-decrypt (reads encrypted backups only) --------------------

def read_iphone_backup_decrypt(backup, password, out, result):
    from iphone_backup_decrypt import EncryptedBackup

    if password is None:
        raise Failed("iphone-backup-decrypt reads only encrypted backups; give --password-file")
    b = EncryptedBackup(backup_directory=backup, passphrase=password)
    b.test_decryption()  # unlocks the keybag and decrypts Manifest.db, or raises
    with b.manifest_db_cursor() as cur:
        cur.execute("SELECT fileID, domain, relativePath, flags FROM Files")
        rows = cur.fetchall()
    result["entries"] = len(rows)
    regular = [r for r in rows if r[3] == 1]
    # Extracts every flags=1 row to out/<domain>/<dirname>/<basename>.
    n = b.extract_files(relative_paths_like="%", domain_like="%", output_folder=out,
                        preserve_folders=True, domain_subfolders=True)
    if n != len(regular):
        raise Failed(f"extract_files wrote {n} files, Manifest.db lists {len(regular)}")
    result["files"] = n
    result["bytes"] = sum(extracted_size(os.path.join(out, d, p)) for _, d, p, _ in regular)


# --- iOSbackup ---------------------------------------------------------------

def read_iosbackup(backup, password, out, result):
    from iOSbackup import iOSbackup

    root, udid = os.path.split(os.path.abspath(backup))
    # Reads Manifest.plist, Info.plist and Status.plist; with a password it
    # derives the key, unwraps the class keys and decrypts Manifest.db.
    b = iOSbackup(udid=udid, cleartextpassword=password, backuproot=root)
    try:
        # What getDeviceList() shows for the folder (indexes Lockdown keys).
        iOSbackup.getDeviceBasicInfo(udid=udid, backuproot=root)
        rows = b.getBackupFilesList()
        result["entries"] = len(rows)
        files = nbytes = 0
        for row in rows:
            if row["flags"] != 1:
                continue
            entry = b.getFileManifestDBEntry(fileNameHash=row["fileID"])
            target = os.path.join(out, row["domain"], row["relativePath"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            info = b.getFileDecryptedCopy(manifestEntry=entry, targetFolder=os.path.dirname(target),
                                          targetName=os.path.basename(target))
            if info["isFolder"] and os.path.isdir(target):
                # iOSbackup treats Size 0 without EncryptionKey as a folder,
                # so an empty file of a plain backup comes out as a directory.
                result["notes"].append(f"empty file made a directory: {row['domain']}/{row['relativePath']}")
                files += 1
                continue
            nbytes += extracted_size(target)
            files += 1
        result["files"], result["bytes"] = files, nbytes
    finally:
        b.close()  # removes its decrypted copy of Manifest.db


# --- pyiosbackup -------------------------------------------------------------

def read_pyiosbackup(backup, password, out, result):
    from pyiosbackup import Backup

    b = Backup.from_path(backup, password or "")
    entries = list(b.iter_entries())
    result["entries"] = len(entries)
    regular = [e for e in entries if e.is_file()]  # by Mode & 0xE000 == 0x8000
    b.unback(out, strict=True)  # writes out/<domain>/<relative_path>
    result["files"] = len(regular)
    result["bytes"] = sum(extracted_size(os.path.join(out, e.domain, e.relative_path)) for e in regular)
    # `pyiosbackup stats`: reads Status.plist Date/Version and Info.plist
    # Target Identifier, Installed Applications, IMEI, iTunes Version.
    try:
        b.stats()
    except KeyError as e:
        raise Failed(f"pyiosbackup stats(): no key {e} in Info.plist or Status.plist")


# --- mvt ---------------------------------------------------------------------

def run_mvt(args, env):
    """Runs mvt-ios; returns (exit code, combined console output)."""
    exe = os.path.join(os.path.dirname(sys.executable), "mvt-ios")
    cmd = [exe if os.path.exists(exe) else "mvt-ios",
           "--disable-update-check", "--disable-indicator-update-check", *args]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", timeout=1800)
    sys.stderr.write(proc.stdout)
    return proc.returncode, proc.stdout


def bad_console_lines(text):
    # The console shows logging.ERROR as "ERROR", logging.CRITICAL as "FATAL".
    return [l.strip() for l in text.splitlines() if l.startswith(("ERROR", "FATAL", "CRITICAL"))]


def read_mvt(backup, password, out, result):
    env = dict(os.environ, COLUMNS="250")  # fewer wrapped console lines
    target = backup
    if password is not None:
        target = os.path.join(out, "decrypted")
        env["MVT_IOS_BACKUP_PASSWORD"] = password  # not on the command line
        rc, text = run_mvt(["decrypt-backup", "--destination", target, backup], env)
        bad = bad_console_lines(text)
        if rc != 0 or bad:
            raise Failed(f"mvt-ios decrypt-backup exit {rc}: " + " | ".join(bad))
    check_out = os.path.join(out, "check-backup")
    rc, text = run_mvt(["check-backup", "--output", check_out, target], env)
    result["exit_code"] = rc
    bad = []
    log_path = os.path.join(check_out, "command.log")
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            bad = [l.strip() for l in f if " - ERROR - " in l or " - CRITICAL - " in l]
    else:
        bad = bad_console_lines(text)
    manifest_json = os.path.join(check_out, "manifest.json")
    if os.path.exists(manifest_json):
        with open(manifest_json, encoding="utf-8") as f:
            rows = json.load(f)
        regular = [r for r in rows if r.get("flags") == 1]
        result["entries"] = len(rows)
        result["files"] = len(regular)
        result["bytes"] = sum(r.get("size") or 0 for r in regular)
        # Listed in Manifest.db but absent from the folder: mvt only logs INFO.
        result["missing"] = sum(1 for r in regular if r.get("missing"))
    if rc != 0 or bad:
        raise Failed(f"mvt-ios check-backup exit {rc}: " + " | ".join(bad))
    if not os.path.exists(manifest_json):
        raise Failed("mvt-ios check-backup wrote no manifest.json (Manifest module found nothing)")


# --- main --------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reader", choices=READERS)
    parser.add_argument("backup_dir")
    parser.add_argument("--password-file")
    parser.add_argument("--out", required=True)
    a = parser.parse_args()

    password = None
    if a.password_file:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")  # one line; inner spaces kept
    os.makedirs(a.out, exist_ok=True)

    result = {"reader": a.reader, "entries": 0, "files": 0, "bytes": 0, "ok": False,
              "error": "", "notes": []}
    read = {"iphone-backup-decrypt": read_iphone_backup_decrypt, "iosbackup": read_iosbackup,
            "pyiosbackup": read_pyiosbackup, "mvt": read_mvt}[a.reader]
    try:
        # The libraries print progress and warnings; keep stdout for our JSON.
        with contextlib.redirect_stdout(sys.stderr):
            read(a.backup_dir, password, a.out, result)
        result["ok"] = True
    except Failed as e:
        result["error"] = str(e)
    except Exception as e:  # a library raised: report its type and message
        traceback.print_exc(file=sys.stderr)
        result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
