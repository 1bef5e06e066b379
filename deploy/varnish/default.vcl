vcl 4.1;

# Varnish in front of `opossum serve` (the L4 CDN tier).
#
# - Caches what the origin says it may (`Cache-Control: public, max-age=...`), keyed by URL and,
#   through the origin's `Vary: Accept`, by the negotiated format. Errors arrive with
#   `Cache-Control: no-store` and are not cached.
# - `PURGE` with a `Surrogate-Key` header (what `opossum cache invalidate --purge URL` sends)
#   bans every cached object whose `Surrogate-Key` names that image, so one request drops
#   every variant of it. Only addresses in the `purgers` ACL may purge.
#
# The backend address is the origin's; `varnishd -f default.vcl` reads it from here (the tests
# write a copy with their own port).


backend origin {
    .host = "127.0.0.1";
    .port = "8080";
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (!client.ip ~ purgers) {
            return (synth(403, "purging is not allowed from " + client.ip));
        }
        if (!req.http.Surrogate-Key || req.http.Surrogate-Key !~ "^[0-9a-f]{1,64}$") {
            return (synth(400, "PURGE needs a Surrogate-Key header with an image hash"));
        }
        ban("obj.http.Surrogate-Key == " + req.http.Surrogate-Key);
        return (synth(200, "banned " + req.http.Surrogate-Key));
    }
    # Signed URLs keep their query; nothing else varies by cookie or auth.
    unset req.http.Cookie;
}

sub vcl_backend_response {
    # Keep the image hash on the object, so bans can match it (lurker-friendly: obj.http only).
    if (beresp.http.Cache-Control ~ "no-store") {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
