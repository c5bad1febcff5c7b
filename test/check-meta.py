#!/usr/bin/env python3
"""Check META.json against the PGXN Meta Spec 1.0 and against the tree.

Debian packages no PGXN validator, so this checks the rules of the spec
(https://pgxn.org/spec/) that a hand-written META.json can break: the
required keys, SemVer versions, the license names, version ranges, tags,
resources; and that what it says matches the tree: the files it names
exist, the provided version is connlog.control's default_version, and the
distribution version is the one in debian/changelog.

    test/check-meta.py [TREE]      prints each problem, exits 1 if any
"""

import json
import os
import re
import sys

tree = sys.argv[1] if len(sys.argv) > 1 else "."
problems = []


def problem(msg):
    problems.append(msg)


SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
RANGE_ITEM = re.compile(r"^(?:(?:[=!]=|[<>]=?)\s*)?(.*)$")
LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2",
    "bsd", "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3",
    "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
    "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun",
    "zlib", "open_source", "restricted", "unrestricted", "unknown",
}
TOP_KEYS = {
    "name", "version", "abstract", "maintainer", "license", "provides",
    "meta-spec", "description", "generated_by", "tags", "no_index",
    "prereqs", "release_status", "resources",
}
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}


def custom(key):
    return re.match(r"^[xX]_.", key) is not None


def nonempty_string(v):
    return isinstance(v, str) and v != ""


def check_version_range(where, v):
    if v == 0 or v == "0":
        return
    if not isinstance(v, str):
        problem(f"{where}: version range must be a string or 0")
        return
    for item in v.split(","):
        ver = RANGE_ITEM.match(item.strip()).group(1)
        if not SEMVER.match(ver):
            problem(f"{where}: {ver!r} in {v!r} is not a SemVer version")


try:
    with open(os.path.join(tree, "META.json"), encoding="utf-8") as f:
        meta = json.load(f)
except (OSError, ValueError) as e:
    print(f"META.json: {e}")
    sys.exit(1)

for key in ("name", "version", "abstract", "maintainer", "license",
            "provides", "meta-spec"):
    if key not in meta:
        problem(f"required key {key!r} is missing")
for key in meta:
    if key not in TOP_KEYS and not custom(key):
        problem(f"unknown key {key!r} (custom keys start with x_)")

if not re.match(r"^[A-Za-z0-9_.-]{2,}$", str(meta.get("name", ""))):
    problem("name must be a term of 2 or more characters, no slashes")
if not SEMVER.match(str(meta.get("version", ""))):
    problem(f"version {meta.get('version')!r} is not SemVer")
for key in ("abstract", "description", "generated_by"):
    if key in meta and not nonempty_string(meta[key]):
        problem(f"{key} must be a non-empty string")

maint = meta.get("maintainer")
if not (nonempty_string(maint) or
        (isinstance(maint, list) and maint and
         all(nonempty_string(m) for m in maint))):
    problem("maintainer must be a string or a non-empty list of strings")

lic = meta.get("license")
names = ([lic] if isinstance(lic, str) else
         lic if isinstance(lic, list) else [])
if isinstance(lic, dict):
    if not lic:
        problem("license object must not be empty")
elif not names or any(n not in LICENSES for n in names):
    problem(f"license {lic!r} is not one of the spec's license names")

spec = meta.get("meta-spec", {})
if not isinstance(spec, dict) or \
        not re.match(r"^1\.0\.\d+$", str(spec.get("version", ""))):
    problem("meta-spec.version must be 1.0.x")

provides = meta.get("provides", {})
if not isinstance(provides, dict) or not provides:
    problem("provides must be a non-empty object")
    provides = {}
for ext, info in provides.items():
    for key in ("file", "version"):
        if key not in info:
            problem(f"provides.{ext}: {key!r} is missing")
    for key in info:
        if key not in ("file", "version", "abstract", "docfile") \
                and not custom(key):
            problem(f"provides.{ext}: unknown key {key!r}")
    if not SEMVER.match(str(info.get("version", ""))):
        problem(f"provides.{ext}.version is not SemVer")
    for key in ("file", "docfile"):
        if key in info and \
                not os.path.isfile(os.path.join(tree, info[key])):
            problem(f"provides.{ext}.{key} {info[key]!r} does not exist")

for phase, rels in meta.get("prereqs", {}).items():
    if phase not in PHASES and not custom(phase):
        problem(f"prereqs: unknown phase {phase!r}")
        continue
    for rel, deps in rels.items():
        if custom(rel):
            continue
        if rel not in RELATIONS:
            problem(f"prereqs.{phase}: unknown relationship {rel!r}")
            continue
        for dep, rng in deps.items():
            check_version_range(f"prereqs.{phase}.{rel}.{dep}", rng)

tags = meta.get("tags", ["ok"])
if not isinstance(tags, list) or not tags or \
        any(not isinstance(t, str) or len(t) < 2 or len(t) > 255 or
            re.search(r"[/\\\x00-\x1f]", t) for t in tags):
    problem("tags must be a non-empty list of 2-255 character strings "
            "without slashes")

if meta.get("release_status", "stable") not in ("stable", "testing",
                                                "unstable"):
    problem("release_status must be stable, testing or unstable")

res = meta.get("resources", {"x_": 1})
if not isinstance(res, dict) or not res or \
        any(k not in ("homepage", "bugtracker", "repository")
            and not custom(k) for k in res):
    problem("resources may hold only homepage, bugtracker, repository")
bug = res.get("bugtracker", {"web": ""})
if not (set(bug) & {"web", "mailto"}):
    problem("resources.bugtracker needs web or mailto")

# what META.json says about the tree
with open(os.path.join(tree, "connlog.control"), encoding="utf-8") as f:
    default = re.search(r"^default_version\s*=\s*'([^']*)'", f.read(),
                        re.M).group(1)
conn = provides.get("connlog", {})
if conn.get("file") != f"connlog--{default}.sql":
    problem(f"provides.connlog.file should be connlog--{default}.sql, "
            f"the script of default_version {default}")
if not str(conn.get("version", "")).startswith(default + "."):
    problem(f"provides.connlog.version {conn.get('version')!r} does not "
            f"match default_version {default}")
changelog = os.path.join(tree, "debian", "changelog")
if os.path.exists(changelog):
    with open(changelog, encoding="utf-8") as f:
        deb = re.match(r"^\S+ \(([^)-]+)", f.readline()).group(1)
    if deb != meta.get("version"):
        problem(f"debian/changelog is at {deb}, META.json at "
                f"{meta.get('version')}")

for p in problems:
    print(f"META.json: {p}")
if problems:
    sys.exit(1)
print(f"META.json: {meta['name']} {meta['version']} follows the PGXN Meta "
      f"Spec {spec['version']}")
