"""Billing portal configurations and sessions, and the local page a session URL opens."""

from __future__ import annotations

import html
from typing import Any

from sandbox.core import (
    ApiError,
    Obj,
    Store,
    as_bool,
    as_int,
    copy_fields,
    invalid,
    list_page,
    metadata_update,
    missing,
    new_id,
)
from sandbox.routes import route

SESSION_TTL = 300
NO_CONFIG = ("No configuration provided and your test mode default configuration has not been created. "
             "Provide a configuration or create your default by saving your customer portal settings in test "
             "mode at https://dashboard.stripe.com/test/settings/billing/portal.")
FLOW_TYPES = ("payment_method_update", "subscription_cancel", "subscription_update", "subscription_update_confirm")


def _features(raw: Any) -> Obj:
    raw = raw if isinstance(raw, dict) else {}

    def enabled(name: str) -> bool:
        f = raw.get(name)
        return bool(isinstance(f, dict) and as_bool(f, "enabled", False))

    def sub(name: str) -> Obj:
        return raw.get(name) if isinstance(raw.get(name), dict) else {}

    cancel = sub("subscription_cancel")
    update = sub("subscription_update")
    cu = sub("customer_update")
    return {
        "customer_update": {"allowed_updates": list(cu.get("allowed_updates") or []),
                            "enabled": enabled("customer_update")},
        "invoice_history": {"enabled": enabled("invoice_history")},
        "payment_method_update": {"enabled": enabled("payment_method_update"), "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": []}, "enabled": enabled("subscription_cancel"),
            "mode": cancel.get("mode", "at_period_end"),
            "proration_behavior": cancel.get("proration_behavior", "none")},
        "subscription_pause": {"duration": {"interval_options": [], "type": "indefinite"},
                               "enabled": enabled("subscription_pause")},
        "subscription_update": {
            "billing_cycle_anchor": None, "default_allowed_updates": list(update.get("default_allowed_updates") or []),
            "enabled": enabled("subscription_update"), "products": [
                {"adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                 "prices": list(pr.get("prices") or []), "product": pr.get("product")}
                for pr in (update.get("products") or []) if isinstance(pr, dict)],
            "proration_behavior": update.get("proration_behavior", "create_prorations"),
            "schedule_at_period_end": {"conditions": []}, "trial_update_behavior": "end_trial"},
    }


@route("POST", "/v1/billing_portal/configurations", {"business_profile", "features", "default_return_url",
                                                     "login_page", "metadata", "name"})
def config_create(store: Store, params: Obj) -> Obj:
    if not isinstance(params.get("features"), dict):
        raise invalid("Missing required param: features.", param="features", code="parameter_missing")
    now = store.now()
    bp = params.get("business_profile") if isinstance(params.get("business_profile"), dict) else {}
    cfg = {"id": new_id("bpc"), "object": "billing_portal.configuration", "active": True, "application": None,
           "business_profile": {"headline": bp.get("headline"), "privacy_policy_url": bp.get("privacy_policy_url"),
                                "terms_of_service_url": bp.get("terms_of_service_url")},
           "created": now, "default_return_url": params.get("default_return_url") or None,
           "features": _features(params["features"]), "is_default": store.default_portal_config is None,
           "livemode": False, "login_page": {"enabled": False, "url": None},
           "metadata": metadata_update({}, params.get("metadata")), "name": params.get("name") or None, "updated": now}
    store.put(cfg)
    if cfg["is_default"]:
        store.default_portal_config = cfg["id"]
    store.emit("billing_portal.configuration.created", cfg)
    return cfg


@route("GET", "/v1/billing_portal/configurations", {"limit", "starting_after", "ending_before", "active",
                                                    "is_default"})
def config_list(store: Store, params: Obj) -> Obj:
    idx = store.index.get("billing_portal.configuration")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/billing_portal/configurations"}
    is_default, active = as_bool(params, "is_default"), as_bool(params, "active")

    def match(c: Obj) -> bool:
        return (is_default is None or c["is_default"] == is_default) and (active is None or c["active"] == active)

    return list_page(store, idx.ids, params, "/v1/billing_portal/configurations", pos=idx.pos, match=match)


@route("GET", "/v1/billing_portal/configurations/{cfg}", set())
def config_retrieve(store: Store, params: Obj, cfg: str) -> Obj:
    return store.get(cfg, "billing_portal.configuration", "configuration")


@route("POST", "/v1/billing_portal/configurations/{cfg}", {"active", "business_profile", "features",
                                                           "default_return_url", "metadata", "name"})
def config_update(store: Store, params: Obj, cfg: str) -> Obj:
    c = store.get(cfg, "billing_portal.configuration", "configuration")
    if "active" in params:
        c["active"] = as_bool(params, "active")
    if isinstance(params.get("features"), dict):
        c["features"] = _features(params["features"])
    copy_fields(c, params, ("default_return_url", "name"))
    if "metadata" in params:
        c["metadata"] = metadata_update(c["metadata"], params["metadata"])
    c["updated"] = store.now()
    store.emit("billing_portal.configuration.updated", c)
    return c


def _flow(store: Store, raw: Any, cid: str) -> Obj:
    if not isinstance(raw, dict) or raw.get("type") not in FLOW_TYPES:
        raise invalid(f"Invalid flow_data[type]: must be one of {', '.join(FLOW_TYPES)}", param="flow_data[type]")
    kind = raw["type"]
    flow: Obj = {"after_completion": {"hosted_confirmation": None, "redirect": None, "type": "portal_homepage"},
                 "subscription_cancel": None, "subscription_update": None, "subscription_update_confirm": None,
                 "type": kind}
    ac = raw.get("after_completion")
    if isinstance(ac, dict) and ac.get("type"):
        if ac["type"] == "redirect":
            url = (ac.get("redirect") or {}).get("return_url") if isinstance(ac.get("redirect"), dict) else None
            if not url:
                raise invalid("Missing required param: flow_data[after_completion][redirect][return_url].",
                              param="flow_data[after_completion][redirect][return_url]", code="parameter_missing")
            flow["after_completion"] = {"hosted_confirmation": None, "redirect": {"return_url": url},
                                        "type": "redirect"}
        elif ac["type"] == "hosted_confirmation":
            msg = (ac.get("hosted_confirmation") or {}).get("custom_message") \
                if isinstance(ac.get("hosted_confirmation"), dict) else None
            flow["after_completion"] = {"hosted_confirmation": {"custom_message": msg}, "redirect": None,
                                        "type": "hosted_confirmation"}
    if kind == "payment_method_update":
        return flow
    body = raw.get(kind)
    param = f"flow_data[{kind}][subscription]"
    if not isinstance(body, dict) or not body.get("subscription"):
        raise invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")
    sub = store.objs.get(body["subscription"])
    if sub is None or sub["object"] != "subscription":
        raise invalid(f"No such subscription: '{body['subscription']}'", param=param, code="resource_missing")
    if sub["customer"] != cid:
        raise invalid(f"The subscription {sub['id']} does not belong to the customer {cid}.", param=param)
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(f"You can't create a portal session for the subscription {sub['id']} because it is "
                      "canceled.", param=param)
    if kind == "subscription_cancel":
        flow["subscription_cancel"] = {"retention": None, "subscription": sub["id"]}
    elif kind == "subscription_update":
        flow["subscription_update"] = {"subscription": sub["id"]}
    else:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise invalid("Missing required param: flow_data[subscription_update_confirm][items].",
                          param="flow_data[subscription_update_confirm][items]", code="parameter_missing")
        own = {i["id"] for i in sub["items"]["data"]}
        out = []
        for n, it in enumerate(items):
            if not isinstance(it, dict) or it.get("id") not in own:
                raise invalid("Each item must be an item of the subscription.",
                              param=f"flow_data[subscription_update_confirm][items][{n}][id]")
            if it.get("price"):
                store.get(it["price"], "price", param=f"flow_data[subscription_update_confirm][items][{n}][price]")
            out.append({"id": it["id"], "price": it.get("price"),
                        "quantity": as_int(it, "quantity", minimum=0)})
        flow["subscription_update_confirm"] = {"discounts": None, "items": out, "subscription": sub["id"]}
    return flow


@route("POST", "/v1/billing_portal/sessions", {"customer", "return_url", "configuration", "locale", "flow_data",
                                               "on_behalf_of"})
def session_create(store: Store, params: Obj) -> Obj:
    cid = params.get("customer")
    if not cid:
        raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
    c = store.objs.get(cid)
    if c is None or c["object"] != "customer" or c.get("_deleted"):
        raise missing("customer", cid, "customer")
    if params.get("configuration"):
        cfg = store.objs.get(params["configuration"])
        if cfg is None or cfg["object"] != "billing_portal.configuration":
            raise missing("configuration", params["configuration"], "configuration")
        if not cfg["active"]:
            raise invalid("The configuration is not active.", param="configuration")
    elif store.default_portal_config is None:
        raise invalid(NO_CONFIG)
    else:
        cfg = store.objs[store.default_portal_config]
    return_url = params.get("return_url") or cfg["default_return_url"]
    if return_url and not str(return_url).startswith(("http://", "https://")):
        raise invalid("Not a valid URL", param="return_url", code="url_invalid")
    flow = _flow(store, params["flow_data"], cid) if "flow_data" in params else None
    sid = new_id("bps")
    s = {"id": sid, "object": "billing_portal.session", "configuration": cfg["id"], "created": store.now(),
         "customer": cid, "flow": flow, "livemode": False, "locale": params.get("locale") or None,
         "on_behalf_of": params.get("on_behalf_of") or None, "return_url": return_url,
         "url": f"{store.base_url}/_sandbox/pages/portal/{sid}"}
    store.put(s)
    return s


PAGE_CARDS = [("4242424242424242", "Visa •••• 4242 (succeeds)"),
              ("5555555555554444", "Mastercard •••• 4444 (succeeds)"),
              ("4000000000000341", "Visa •••• 0341 (attaches, every charge declined)"),
              ("4000000000000002", "Visa •••• 0002 (declined when added)")]


def _session(store: Store, sid: str) -> tuple[Obj | None, tuple[int, str] | None]:
    """The live session, or the page to answer instead (unknown: 404; older than 5 minutes: 410)."""
    s = store.objs.get(sid)
    if s is None or s.get("object") != "billing_portal.session":
        return None, (404, _html("Portal session not found", "<p>This portal link is not valid.</p>"))
    if store.now() > s["created"] + SESSION_TTL:
        return None, (410, _html("Portal session expired", "<p>This portal link has expired (links last 5 "
                                 "minutes). Ask for a new link.</p>" + _back(s)))
    return s, None


def _back(s: Obj) -> str:
    ret = s["return_url"]
    return f'<p><a id="return" href="{html.escape(ret)}">Return to {html.escape(ret)}</a></p>' if ret else ""


def portal_page(store: Store, sid: str, notice: str = "") -> tuple[int, str]:
    """The HTML a session URL opens: names the customer and flow, links back to return_url, and offers the
    flow's action (add a card; cancel the subscription) so a demo can play the customer's part."""
    s, answer = _session(store, sid)
    if s is None:
        return answer  # type: ignore[return-value]
    c = store.objs.get(s["customer"], {})
    who = html.escape(c.get("name") or c.get("email") or s["customer"])
    flow = s["flow"]["type"] if s["flow"] else "portal_homepage"
    target = ""
    if s["flow"]:
        for k in ("subscription_cancel", "subscription_update", "subscription_update_confirm"):
            if s["flow"].get(k):
                target = f'<p>Subscription: <code id="subscription">{s["flow"][k]["subscription"]}</code></p>'
    actions = ""
    if flow in ("payment_method_update", "portal_homepage"):
        options = "".join(f'<option value="{n}">{html.escape(label)}</option>' for n, label in PAGE_CARDS)
        actions += (f'<form id="card-form" method="post" action="/_sandbox/pages/portal/{sid}/card">'
                    f'<label>New card <select name="number">{options}</select></label> '
                    '<button type="submit">Use this card</button></form>')
    if flow == "subscription_cancel":
        actions += (f'<form id="cancel-form" method="post" action="/_sandbox/pages/portal/{sid}/cancel">'
                    '<button type="submit">Cancel subscription</button></form>')
    body = (f'<p>Customer: <strong id="customer">{who}</strong> (<code>{s["customer"]}</code>)</p>'
            f'<p>Flow: <code id="flow">{flow}</code></p>{target}'
            f'<p>Locale: {html.escape(s["locale"] or "auto")}</p>'
            f'{notice}{actions}{_back(s)}')
    return 200, _html("Sandbox customer portal", body)


def portal_action(store: Store, sid: str, action: str, form: dict[str, str]) -> tuple[int, str]:
    """What the page's buttons do, through the same code as the API (events included)."""
    from sandbox.billing import set_status
    from sandbox.lifecycle import cancel_subscription
    from sandbox.resources import attach, make_card_pm

    s, answer = _session(store, sid)
    if s is None:
        return answer  # type: ignore[return-value]
    c = store.objs.get(s["customer"])
    if c is None or c.get("_deleted"):
        return 404, _html("Customer not found", "<p>This customer no longer exists.</p>" + _back(s))
    flow = s["flow"]["type"] if s["flow"] else "portal_homepage"
    if action == "card" and flow in ("payment_method_update", "portal_homepage"):
        number = form.get("number", "")
        if number not in dict(PAGE_CARDS):
            return 400, _html("Unknown card", "<p>Pick one of the listed test cards.</p>" + _back(s))
        pm = make_card_pm(store, number, 12, 2034)
        try:
            attach(store, pm["id"], c["id"])
        except ApiError as err:
            notice = f'<p id="error" role="alert">{html.escape(err.body["message"])}</p>'
            return 402, portal_page(store, sid, notice)[1]
        before = {"invoice_settings": c["invoice_settings"]}
        c["invoice_settings"] = dict(c["invoice_settings"], default_payment_method=pm["id"])
        store.emit("customer.updated", c, before)
        for sub_id in store.children("subscription", c["id"]):  # the portal also moves subscriptions over
            sub = store.objs[sub_id]
            if sub["default_payment_method"] and sub["status"] not in ("canceled", "incomplete_expired"):
                prev = sub["default_payment_method"]
                sub["default_payment_method"] = pm["id"]
                store.emit("customer.subscription.updated", sub, {"default_payment_method": prev})
        notice = f'<p id="done" role="status">Card •••• {number[-4:]} is now the default payment method.</p>'
        return 200, portal_page(store, sid, notice)[1]
    if action == "cancel" and flow == "subscription_cancel":
        sub = store.objs[s["flow"]["subscription_cancel"]["subscription"]]
        if sub["status"] in ("canceled", "incomplete_expired"):
            return 200, portal_page(store, sid, '<p id="done" role="status">Already canceled.</p>')[1]
        cfg = store.objs.get(s["configuration"], {})
        mode = cfg.get("features", {}).get("subscription_cancel", {}).get("mode", "at_period_end")
        if mode == "immediately":
            cancel_subscription(store, sub, reason="cancellation_requested")
            text = "The subscription is canceled."
        else:
            _, end = sub["_period"]
            set_status(store, sub, sub["status"], {"cancel_at_period_end": True, "cancel_at": end,
                                                    "canceled_at": store.now()})
            text = "The subscription will be canceled at the end of the period."
        return 200, portal_page(store, sid, f'<p id="done" role="status">{text}</p>')[1]
    return 400, _html("Not available", f"<p>{html.escape(action)} is not part of this portal flow.</p>" + _back(s))


def _html(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{body}<p><small>Local Stripe sandbox — not the real Stripe portal."
            f"</small></p></body></html>")
