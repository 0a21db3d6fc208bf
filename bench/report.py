#!/usr/bin/env python3
"""report.py — parse bench/run.sh's raw output; print the table and ratios; write JSON.

    report.py --one RAW/TARGET.PROTO.ROUND     one measurement, one line (progress)
    report.py RAW_DIR META_JSON OUT_JSON       everything: table, ratios, JSON

Raw files per measurement (prefix TARGET.PROTO.ROUND):
  .h2load.txt  h2load's stdout;  .log.tsv  h2load --log-file (start µs, status, µs to
  end of response) — p50/p99 come from here, h2load itself prints no percentiles;
  .cpu.json    CPU ticks of the proxy (and of the upstream) over the measured run.
With several rounds every figure is the median over rounds; ratios are taken from
those medians (the per-round ratios are in the JSON too).
"""
import glob, json, math, os, re, statistics, sys

TARGETS = ["portvakt-auth", "portvakt-assert", "portvakt-bypass", "pingora-bare", "nginx-tls", "nginx-authreq"]
PROTOS = ["h1", "h2"]


def grab(pat, text, conv=float):
    m = re.search(pat, text, re.M)
    return conv(m.group(1)) if m else None


def percentile(sorted_vals, p):
    """nearest-rank percentile"""
    if not sorted_vals:
        return None
    k = max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def one(prefix):
    cpu = json.load(open(prefix + ".cpu.json"))
    text = open(prefix + ".h2load.txt", errors="replace").read()
    lat = []
    statuses = {}
    if os.path.exists(prefix + ".log.tsv"):
        for line in open(prefix + ".log.tsv"):
            f = line.split("\t")
            if len(f) >= 3:
                lat.append(int(f[2]))
                statuses[f[1]] = statuses.get(f[1], 0) + 1
    lat.sort()
    n = cpu["n"]
    tick_us = 1e6 / cpu["clk_tck"]
    res = {
        "target": cpu["target"], "proto": cpu["proto"], "round": cpu["round"], "n": n,
        "rps": grab(r"finished in [\d.]+\w+, ([\d.]+) req/s", text),
        "succeeded": grab(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text, int),
        "status_2xx": grab(r"status codes: (\d+) 2xx", text, int),
        "protocol": grab(r"Application protocol: (\S+)", text, str),
        "tls": grab(r"TLS Protocol: (\S+)", text, str),
        "cipher": grab(r"Cipher: (\S+)", text, str),
        "mean_ms": grab(r"^time for request:\s+\S+\s+\S+\s+(\S+)", text, str),
        "p50_ms": round(percentile(lat, 50) / 1000, 3) if lat else None,
        "p99_ms": round(percentile(lat, 99) / 1000, 3) if lat else None,
        "latency_samples": len(lat),
        "proxy_cpu_us_per_req": round(cpu["proxy_ticks"] * tick_us / n, 1),
        "upstream_cpu_us_per_req": round(cpu["upstream_ticks"] * tick_us / n, 1),
        "wall_s": cpu["wall_s"],
        # context switches of the proxy's threads per request: a load-independent sign of
        # thread hand-offs (futex wake-ups); nginx's event loop stays near 0
        "proxy_ctxsw_per_req": round(cpu["proxy_ctxsw"] / n, 2) if "proxy_ctxsw" in cpu else None,
        "loadgen_cpu_us_per_req": round(cpu.get("loadgen_ticks", 0) * tick_us / n, 1),
        # CPU used on the machine by anything else than proxy, upstream and load generator,
        # as % of one CPU over the run: background load that makes the figures noisier
        "other_cpu_pct": round(max(0, cpu.get("machine_busy_ticks", 0) - cpu["proxy_ticks"]
                                   - cpu["upstream_ticks"] - cpu.get("loadgen_ticks", 0))
                               * tick_us / 1e4 / max(cpu["wall_s"] + 0.5, 0.001), 1),
        "access_log_lines": cpu.get("access_log_lines"),
    }
    return res


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def main():
    if sys.argv[1] == "--one":
        r = one(sys.argv[2])
        print(f"[bench] round {r['round']} {r['target']:<16} {r['proto']}: "
              f"{fmt(r['rps'], '{:.0f}')} req/s, p99 {fmt(r['p99_ms'], '{:.2f}')} ms, "
              f"proxy CPU {r['proxy_cpu_us_per_req']} µs/req, {r['proxy_ctxsw_per_req']} ctxsw/req, 2xx {r['status_2xx']}/{r['n']}, "
              f"other load {r['other_cpu_pct']}% of a CPU")
        return
    raw, meta_file, out = sys.argv[1:4]
    meta = json.load(open(meta_file))
    runs = [one(p[: -len(".cpu.json")]) for p in sorted(glob.glob(os.path.join(raw, "*.cpu.json")))]
    nums = ["rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_req", "upstream_cpu_us_per_req", "proxy_ctxsw_per_req",
            "loadgen_cpu_us_per_req", "other_cpu_pct"]
    results = {}
    for r in runs:
        results.setdefault(r["target"], {}).setdefault(r["proto"], []).append(r)
    summary = {}
    for t, by_proto in results.items():
        for p, rs in by_proto.items():
            s = {k: round(statistics.median([r[k] for r in rs if r[k] is not None]), 3)
                 if any(r[k] is not None for r in rs) else None for k in nums}
            s["status_2xx"] = sum(r["status_2xx"] or 0 for r in rs)
            s["requests"] = sum(r["n"] for r in rs)
            s["rounds"] = rs
            summary.setdefault(t, {})[p] = s

    def cpu(t, p):
        return summary.get(t, {}).get(p, {}).get("proxy_cpu_us_per_req")

    def ratio(a, b, p):
        x, y = cpu(a, p), cpu(b, p)
        return round(x / y, 3) if x and y else None

    ratios = {}
    for name, b, target in [("auth_over_bypass", "portvakt-bypass", 1.1),
                            ("auth_over_nginx_authreq", "nginx-authreq", 0.8),
                            ("auth_over_nginx_tls", "nginx-tls", None),
                            ("bypass_over_nginx_tls", "nginx-tls", None),
                            ("auth_over_bare", "pingora-bare", None),
                            ("bypass_over_bare", "pingora-bare", None),
                            ("bare_over_nginx_authreq", "nginx-authreq", None),
                            ("assert_over_auth", "portvakt-auth", None)]:
        a = {"bypass": "portvakt-bypass", "bare": "pingora-bare", "assert": "portvakt-assert"}.get(name.split("_")[0], "portvakt-auth")
        per = {p: ratio(a, b, p) for p in PROTOS}
        vals = [v for v in per.values() if v is not None]
        mean = round(sum(vals) / len(vals), 3) if vals else None
        ratios[name] = {**per, "mean_h1_h2": mean, "target": target,
                        "met": (mean <= target) if (target and mean) else None}
        # per-round ratios (same round, same conditions)
        rounds = {}
        for p in PROTOS:
            ra = {r["round"]: r["proxy_cpu_us_per_req"] for r in results.get(a, {}).get(p, [])}
            rb = {r["round"]: r["proxy_cpu_us_per_req"] for r in results.get(b, {}).get(p, [])}
            rounds[p] = [round(ra[k] / rb[k], 3) for k in sorted(ra) if k in rb and rb[k]]
        ratios[name]["per_round"] = rounds

    print()
    print(f"portvakt bench — {meta['n']} requests per target and protocol, {meta['rounds']} round(s), "
          f"server.threads {meta['server_threads']}, access log on; rev {meta['repo_rev']}")
    print(f"h1: {meta['h1']}   h2: {meta['h2']}   (medians over rounds)")
    print()
    hdr = f"| {'target':<16} | proto | {'req/s':>7} | {'p50 ms':>6} | {'p99 ms':>6} | {'proxy CPU µs/req':>16} | {'upstream CPU µs/req':>19} | ctxsw/req | {'2xx':>14} | other load |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for t in TARGETS + sorted(set(summary) - set(TARGETS)):
        for p in PROTOS:
            s = summary.get(t, {}).get(p)
            if not s:
                continue
            print(f"| {t:<16} | {p:<5} | {fmt(s['rps'], '{:.0f}'):>7} | {fmt(s['p50_ms'], '{:.2f}'):>6} | "
                  f"{fmt(s['p99_ms'], '{:.2f}'):>6} | {fmt(s['proxy_cpu_us_per_req']):>16} | "
                  f"{fmt(s['upstream_cpu_us_per_req']):>19} | {fmt(s['proxy_ctxsw_per_req'], '{:.2f}'):>9} | {str(s['status_2xx']) + '/' + str(s['requests']):>14} | {fmt(s['other_cpu_pct'], '{:.0f}%'):>10} |")
    print()
    labels = {"auth_over_bypass": "CPU/req portvakt-auth / portvakt-bypass",
              "auth_over_nginx_authreq": "CPU/req portvakt-auth / nginx-authreq",
              "auth_over_nginx_tls": "CPU/req portvakt-auth / nginx-tls",
              "bypass_over_nginx_tls": "CPU/req portvakt-bypass / nginx-tls",
              "auth_over_bare": "CPU/req portvakt-auth / pingora-bare",
              "bypass_over_bare": "CPU/req portvakt-bypass / pingora-bare",
              "bare_over_nginx_authreq": "CPU/req pingora-bare / nginx-authreq",
              "assert_over_auth": "CPU/req portvakt-assert / portvakt-auth"}
    for k, lab in labels.items():
        r = ratios[k]
        if r["mean_h1_h2"] is None:
            continue
        tgt = f"  target ≤ {r['target']}: {'MET' if r['met'] else 'NOT MET'}" if r["target"] else ""
        print(f"{lab:<42} h1 {fmt(r['h1'], '{:.2f}')}  h2 {fmt(r['h2'], '{:.2f}')}  "
              f"mean {fmt(r['mean_h1_h2'], '{:.2f}')}{tgt}")
    print("\nother load: CPU used meanwhile by anything but proxy, upstream and h2load (% of one CPU);"
          "\nfigures taken while it is high are inflated (shared 2-core machine).")
    bad = [f"{t}/{p}" for t, bp in summary.items() for p, s in bp.items() if s["status_2xx"] != s["requests"]]
    if bad:
        print(f"\nWARNING: not every request answered 2xx: {', '.join(bad)}")
    json.dump({"meta": meta, "results": summary, "ratios": ratios}, open(out, "w"), indent=1)
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
