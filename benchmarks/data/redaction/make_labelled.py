"""Writes ``labelled.jsonl``: short work texts with every sensitive value's character span.

    python benchmarks/data/redaction/make_labelled.py

The texts are written by hand in the style of e-mail, Slack, support tickets, logs, config
files and meeting notes (mostly English, some French, German and Spanish); the values with
checksums — card numbers (Luhn), IBANs (mod 97 and the national checks python-stdnum
knows), US SSNs, Spanish DNI/NIE, Italian codici fiscali, French NIRs, a German Steuer-ID —
and the random parts of tokens are generated from a fixed seed, so the file is the same on
every run. A value is marked ``[[KIND|value]]`` in a template; the marks are removed and
their offsets recorded.

What is labelled, as a careful privacy reviewer would mask it:

* EMAIL: every address of a person, a team or a company; not ``git@github.com`` in an SSH
  remote (a fixed user name, not an address).
* PHONE: every phone or fax number, with its ``+`` and country code, in any national
  format, including company hotlines; not meeting ids, order numbers, IMEIs, extensions.
* CREDIT_CARD: full card numbers (published and generated Luhn-valid test numbers); not
  the last four digits, BINs, or order numbers that happen to have 16 digits.
* IBAN: the whole IBAN, spaced or compact.
* IP_ADDRESS: every IPv4/IPv6 address, private, loopback and unspecified ones included
  (an address is an address; masking ``127.0.0.1`` costs nothing); only the address of a
  CIDR block (``10.0.0.0`` of ``10.0.0.0/8``), not its port. A dotted four-part number the
  text calls a version or build (``build 1.4.0.2``) is **not** an address: the reviewer
  reads the context. MAC addresses, OIDs and times are not addresses.
* NATIONAL_ID: personal identity numbers — US SSN, Spanish DNI/NIE, Italian codice
  fiscale, French NIR, and one German Steuer-ID and one UK National Insurance number
  (kinds the recognizer does not know: a reviewer masks them all the same); not company
  numbers (EIN, SIRET), customer numbers or employee numbers.
* SECRET: the secret itself — a key or token whole, a PEM private key block from BEGIN to
  END, only the password of ``user:password@`` in a URL, only the value after
  ``password:``/``Passwort:``/``contraseña`` in prose or config, a meeting passcode; not
  ``${VAR}`` references, ``changeme`` or ``********`` placeholders, or the words
  "password"/"token" without a value.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from pathlib import Path

from stdnum import iban, luhn
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.it import codicefiscale
from stdnum.us import ssn

HERE = Path(__file__).resolve().parent
SEED = 20261207
MARK = re.compile(r"\[\[([A-Z_]+)\|(.*?)\]\]", re.DOTALL)
ALNUM = string.ascii_letters + string.digits
rng = random.Random(SEED)


def m(kind: str, value: str) -> str:
    return f"[[{kind}|{value}]]"


def E(value: str) -> str:
    return m("EMAIL", value)


def P(value: str) -> str:
    return m("PHONE", value)


def IP(value: str) -> str:
    return m("IP_ADDRESS", value)


def S(value: str) -> str:
    return m("SECRET", value)


def C(value: str) -> str:
    return m("CREDIT_CARD", value)


def B(value: str) -> str:
    return m("IBAN", value)


def N(value: str) -> str:
    return m("NATIONAL_ID", value)


def digits(n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def chars(n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# -- values with checksums ----------------------------------------------------------------


def card(prefix: str, length: int, groups: tuple[int, ...] = (4, 4, 4, 4), sep: str = " ") -> str:
    body = prefix + digits(length - len(prefix) - 1)
    number = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(number)
    parts, at = [], 0
    for size in groups:
        parts.append(number[at : at + size])
        at += size
    return sep.join(parts)


def not_luhn(n: int) -> str:
    """An ``n``-digit number that is not a card number (its Luhn check fails)."""
    while True:
        number = rng.choice("3456") + digits(n - 1)
        if not luhn.is_valid(number):
            return number


BBAN = {  # country: the account part, as (letters, digits) runs
    "DE": [("n", 18)],
    "NL": [("a", 4), ("n", 10)],
    "GB": [("a", 4), ("n", 14)],
    "FR": [("n", 23)],
    "ES": [("n", 20)],
    "IT": [("a", 1), ("n", 22)],
    "BE": [("n", 12)],
    "CH": [("n", 17)],
    "AT": [("n", 16)],
    "PL": [("n", 24)],
}


def make_iban(country: str, spaced: bool = True) -> str:
    while True:  # national check digits (FR, ES, IT, BE) pass by chance after some tries
        bban = "".join(
            chars(n, string.ascii_uppercase) if t == "a" else digits(n) for t, n in BBAN[country]
        )
        number = country + iban.calc_check_digits(country + "00" + bban) + bban
        if iban.is_valid(number):
            break
    return iban.format(number) if spaced else number


def make_ssn() -> str:
    while True:
        area = rng.randint(1, 899)
        value = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        if area != 666 and ssn.is_valid(value):
            return value


def make_dni(dash: bool = False) -> str:
    number = digits(8)
    value = number + ("-" if dash else "") + dni.calc_check_digit(number)
    assert dni.is_valid(value)
    return value


def make_nie() -> str:
    number = rng.choice("XYZ") + digits(7)
    value = number + nie.calc_check_digit(number)
    assert nie.is_valid(value)
    return value


def make_codice_fiscale() -> str:
    letters = "BCDFGHLMNPRSTVZ"
    day = rng.randint(1, 28) + rng.choice((0, 40))
    body = (
        chars(6, letters)
        + f"{rng.randint(50, 99):02d}"
        + rng.choice("ABCDEHLMPRST")
        + f"{day:02d}"
        + rng.choice(("H501", "F205", "L219", "A944", "G273", "D612"))
    )
    value = body + codicefiscale.calc_check_digit(body)
    assert codicefiscale.is_valid(value)
    return value


def make_nir(spaced: bool = True) -> str:
    body = (
        rng.choice("12")
        + f"{rng.randint(50, 99):02d}"
        + f"{rng.randint(1, 12):02d}"
        + f"{rng.choice((13, 31, 33, 44, 59, 69, 75, 76, 92, 93)):02d}"
        + f"{rng.randint(1, 999):03d}"
        + f"{rng.randint(1, 999):03d}"
    )
    value = body + nir.calc_check_digits(body)
    assert nir.is_valid(value)
    if not spaced:
        return value
    return " ".join(
        (value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13], value[13:])
    )


def make_steuer_id() -> str:
    while True:
        body = rng.choice("123456789") + digits(9)
        value = body + mod_11_10.calc_check_digit(body)
        if idnr.is_valid(value):
            return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"


# -- tokens (random parts from the seed, shapes of the real formats) ----------------------


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def jwt(subject: str) -> str:
    header = b64url({"alg": "HS256", "typ": "JWT"})
    payload = b64url({"sub": subject, "iat": 1710512527, "exp": 1710516127, "scope": "read"})
    return f"{header}.{payload}.{chars(43, ALNUM + '-_')}"


def pem(kind: str, lines: int, indent: str = "") -> str:
    body = [chars(64, ALNUM + "+/") for _ in range(lines - 1)] + [chars(28, ALNUM + "+/") + "=="]
    inner = "\n".join(indent + line for line in body)
    return f"-----BEGIN {kind}-----\n{inner}\n{indent}-----END {kind}-----"


def aws_key() -> str:
    return "AKIA" + chars(16, string.ascii_uppercase + "234567")


def aws_secret() -> str:
    return chars(40, ALNUM + "/+")


def slack_token(prefix: str = "xoxb") -> str:
    return f"{prefix}-{digits(12)}-{digits(13)}-{chars(24)}"


V = {
    "visa1": card("4", 16),
    "visa2": card("4", 16, (16,)),
    "mc1": card("5" + rng.choice("12345"), 16, sep="-"),
    "mc2": card("2221", 16),
    "amex1": card("37", 15, (4, 6, 5)),
    "amex2": card("34", 15, (4, 6, 5), sep="-"),
    "disc": card("6011", 16, (16,)),
    "jcb": card("3528", 16),
    "order16": " ".join(re.findall(r"\d{4}", not_luhn(16))),
    "iban_de": make_iban("DE"),
    "iban_de2": make_iban("DE", spaced=False),
    "iban_fr": make_iban("FR"),
    "iban_es": make_iban("ES"),
    "iban_es2": make_iban("ES"),
    "iban_es3": make_iban("ES", spaced=False),
    "iban_nl": make_iban("NL", spaced=False),
    "iban_gb": make_iban("GB"),
    "iban_it": make_iban("IT"),
    "iban_be": make_iban("BE"),
    "iban_ch": make_iban("CH"),
    "iban_at": make_iban("AT"),
    "iban_pl": make_iban("PL"),
    "ssn1": make_ssn(),
    "ssn2": make_ssn(),
    "ssn3": make_ssn(),
    "dni1": make_dni(),
    "dni2": make_dni(dash=True),
    "nie1": make_nie(),
    "nie2": make_nie(),
    "cf1": make_codice_fiscale(),
    "cf2": make_codice_fiscale(),
    "cf3": make_codice_fiscale(),
    "nir1": make_nir(),
    "nir2": make_nir(spaced=False),
    "steuer": make_steuer_id(),
    "aws_key1": aws_key(),
    "aws_key2": aws_key(),
    "aws_key3": aws_key(),
    "aws_secret1": aws_secret(),
    "aws_secret2": aws_secret(),
    "ghp1": "ghp_" + chars(36),
    "ghp2": "ghp_" + chars(36),
    "github_pat": "github_pat_" + chars(22) + "_" + chars(59),
    "glpat": "glpat-" + chars(20, ALNUM + "-_"),
    "slack1": slack_token(),
    "slack2": slack_token(),
    "slack_user": slack_token("xoxp"),
    "webhook": f"https://hooks.slack.com/services/T{chars(8, string.ascii_uppercase + string.digits)}"
    f"/B{chars(10, string.ascii_uppercase + string.digits)}/{chars(24)}",
    "sk_live1": "sk_live_" + chars(24),
    "sk_live2": "sk_live_" + chars(99),
    "rk_live": "rk_live_" + chars(24),
    "sk_test": "sk_test_" + chars(24),
    "openai_legacy": "sk-" + chars(20) + "T3BlbkFJ" + chars(20),
    "openai_proj": "sk-proj-" + chars(156, ALNUM + "-_"),
    "openai_svc": "sk-svcacct-" + chars(74, ALNUM + "-_"),
    "anthropic1": "sk-ant-api03-" + chars(93, ALNUM + "-_") + "AA",
    "anthropic2": "sk-ant-api03-" + chars(93, ALNUM + "-_") + "AA",
    "jwt1": jwt("user_88231"),
    "jwt2": jwt("svc-billing"),
    "jwt3": jwt("a.svensson"),
    "pem_rsa": pem("RSA PRIVATE KEY", 6, "    "),
    "pem_ssh": pem("OPENSSH PRIVATE KEY", 5),
    "pem_ec": pem("EC PRIVATE KEY", 3),
    "hf": "hf_" + chars(34),
    "aiza": "AIza" + chars(35, ALNUM + "-_"),
    "sendgrid": f"SG.{chars(22, ALNUM + '-_')}.{chars(43, ALNUM + '-_')}",
    "telegram": f"{digits(10)}:AA{chars(33, ALNUM + '-_')}",
    "hex32": chars(32, "0123456789abcdef"),
    "git40": chars(40, "0123456789abcdef"),
    "sha256": chars(64, "0123456789abcdef"),
}


TEXTS: list[tuple[str, str]] = [
    # -- e-mail --------------------------------------------------------------------------
    (
        "mail",
        f"Hi Priya,\n\nPlease send the signed NDA to {E('legal@northwind-traders.com')} by Friday. "
        f"If anything is unclear, call me on {P('+44 20 7946 0958')}.\n\nBest,\nTom",
    ),
    (
        "mail",
        f"Bonjour Camille,\n\npourriez-vous mettre à jour mon RIB ? Nouvel IBAN : {B(V['iban_fr'])}.\n"
        f"Merci d'avance,\nJulien — {P('06 12 34 56 78')}",
    ),
    (
        "mail",
        "Sehr geehrte Frau Keller,\n\nanbei die Rechnung Nr. 2024-0871 über 1.249,00 EUR. Bitte "
        f"überweisen Sie den Betrag bis zum 15.03.2024 auf {B(V['iban_de'])}. Bei Fragen erreichen "
        f"Sie mich unter {P('+49 30 901820')}.\n\nMit freundlichen Grüßen\nH. Brandt",
    ),
    (
        "mail",
        f"Hola Marta, te reenvío los datos del nuevo empleado: DNI {N(V['dni1'])}, teléfono "
        f"{P('+34 912 345 678')}, correo {E('j.ortega@grupo-lumen.es')}. Empieza el lunes 4 de marzo.",
    ),
    (
        "mail",
        "Re: refund for order #88231-A\n\nThe customer paid with the card ending 4242; the full "
        f"number she read out on the call was {C(V['visa1'])}. Please refund $129.99 and don't "
        "store the number anywhere.",
    ),
    (
        "mail",
        "Hi team, the offsite is on 2024-06-12 from 09:30 to 17:00 at the Riverside Hub, 221 Market "
        f"Street, San Francisco, CA 94105. RSVP to {E('events@acme-corp.io')} before May 31.",
    ),
    (
        "mail",
        "Invoice INV-2024-00912 for PO 4500018231: total €3.480,50 incl. VAT (19%). Payment terms "
        f"30 days net. Questions → {E('accounts.payable@kestrel-logistics.de')}",
    ),
    (
        "mail",
        "Dear Mr. Rossi, to complete onboarding we need your codice fiscale. We have "
        f"{N(V['cf1'])} on file; please confirm it is correct. Your employee number is 004417.",
    ),
    (
        "mail",
        "Thanks for your application! Please reply with a phone number and a good time to talk "
        "this week. (Please do not send your SSN or bank details by e-mail.)\n— Recruiting",
    ),
    (
        "mail",
        "Subject: Your new account\n\nYour account has been created. Username: dwalsh, temporary "
        f"password: {S('Tq7#vLp2xR9w')}. You will be asked to change it at first login.",
    ),
    (
        "mail",
        "Reminder: please reset your password before Friday; passwords older than 90 days "
        "expire. Never share your password or a token with anyone, including IT.",
    ),
    (
        "mail",
        "Hallo Stefan, die Zugangsdaten für das Testsystem: Benutzer admin, Passwort: "
        f"{S('Sommer2024!x')} — bitte nach dem ersten Login ändern. Gruß, Jana",
    ),
    (
        "mail",
        f"Buenos días, adjunto mi NIE {N(V['nie1'])} para el contrato. Mi móvil es "
        f"{P('+34 612 345 678')}. Saludos, Andrea",
    ),
    (
        "mail",
        f"Per our call, the applicant's SSN is {N(V['ssn1'])} and date of birth 04/17/1986. Please run "
        f"the background check and reply to {E('hr-ops@brightline.com')}.",
    ),
    (
        "mail",
        "Hi, I was charged twice (two charges of $49.00 on 03/02). My card number is "
        f"{C(V['mc1'])} exp 09/27. Could you reverse one of them?",
    ),
    (
        "mail",
        "Madame, veuillez trouver ci-joint l'attestation employeur. Numéro de sécurité sociale : "
        f"{N(V['nir1'])}. Cordialement, le service RH.",
    ),
    (
        "mail",
        "Meeting moved to Thursday 3pm (room 4.12). Dial-in: "
        f"{P('+1 646 558 8656')}, meeting ID 812 4471 9905, passcode {S('482913')}.",
    ),
    (
        "mail",
        "Here is the private key for the staging deploy user as discussed; please delete the "
        f"mail after importing it.\n\n{S(V['pem_ssh'])}\n\nThanks, Omar",
    ),
    (
        "mail",
        "Estimado cliente: su contraseña ha sido restablecida. Si no ha sido usted, llame al "
        f"{P('+34 900 123 456')} (24 h).",
    ),
    (
        "mail",
        "Hi Ken, the password is the same as last time (the one we set in January) — I won't "
        "write it here. See you at 2.",
    ),
    (
        "mail",
        f"Please wire the deposit (CHF 2'500.00) to {B(V['iban_ch'])}. Reference: booking "
        "2024-ZRH-8812. Kind regards, Chalet Alpenrose",
    ),
    (
        "mail",
        f"Your order has shipped! Questions? Write to {E('support@fernweh-reisen.de')} or call "
        f"{P('+49 40 12345678')} (Mon–Fri 9–17). Order 2024-DE-003381, 3 items, 84,70 €.",
    ),
    (
        "mail",
        f"Dzień dobry, proszę o przelew na konto {B(V['iban_pl'])}, tytułem: faktura FV/118/2024. "
        f"Kontakt: {E('biuro@sklep-marek.pl')}",
    ),
    (
        "mail",
        f"Servus Lukas, die neue Kontonummer für die Miete: {B(V['iban_at'])}. Danke! Ich bin "
        f"diese Woche unter {P('+43 664 1234567')} erreichbar.",
    ),
    (
        "mail",
        "Hi Sam, attached is the Q3 report (v3.2, 14 pages). Highlights: churn down to 2.1%, "
        "NPS 47, ARR $12.4M. Let's discuss on 10/14 at 11:00.",
    ),
    # -- Slack ---------------------------------------------------------------------------
    (
        "slack",
        "@here deploy of v2.14.3 is done ✅ dashboards at https://grafana.internal/d/abc123 — "
        "ping me if p95 goes above 450ms",
    ),
    (
        "slack",
        "can someone rotate the staging key? I accidentally pasted it in #general: "
        f"{S(V['aws_key1'])} 🙈",
    ),
    ("slack", f"here's the bot token for the test workspace, don't commit it: {S(V['slack1'])}"),
    (
        "slack",
        f"the db is at {IP('10.20.4.17')} port 5432, creds are in 1Password (vault 'Platform')",
    ),
    ("slack", f"just `ssh deploy@{IP('172.16.8.44')}` and tail /var/log/app/current"),
    ("slack", "anyone know why build #4821 failed? commit 9f2c1e7 looks harmless"),
    (
        "slack",
        f"my new number is {P('+61 412 345 678')} (moved to the Sydney office), email is still "
        f"{E('liam.okafor@globex.com')}",
    ),
    (
        "slack",
        "standup: Q3 OKR 2.1 at 80%, 3 P1 tickets open (SUP-4410, SUP-4415, SUP-4502), release "
        "2024.08.1 goes out next Tue",
    ),
    (
        "slack",
        "PSA: tokens for the new API go in the vault, not in Slack. token rotation happens every "
        "30 days.",
    ),
    (
        "slack",
        f"@maria the GitHub PAT you gave me expired, can you make a new one? old one was {S(V['ghp1'])}",
    ),
    (
        "slack",
        f"stripe webhooks failing again, we use {S(V['sk_live1'])} in prod — should we move it "
        "to secrets manager?",
    ),
    ("slack", f"lol the guest wifi password is {S('Lantern-Moss-42')}"),
    (
        "slack",
        f"IPv6 on the new LB: {IP('2001:db8:4006:812::200e')}, health checks come from "
        f"{IP('fe80::1ff:fe23:4567:890a')}",
    ),
    ("slack", "MAC of the broken printer is 00:1A:2B:3C:4D:5E, asset tag IT-00731, 3rd floor"),
    (
        "slack",
        f"quick q: which OpenAI key for the eval harness? I'm using {S(V['openai_legacy'])} from "
        "the shared account, still ok?",
    ),
    (
        "slack",
        f"pushed the fix in {V['git40']}, closes #1182, python pinned back to 3.11.4",
    ),
    (
        "slack",
        f"el servidor de pruebas es {IP('192.168.1.50')}, usuario pruebas, contraseña "
        f"{S('Pru3bas2024')}",
    ),
    ("slack", "ETA for the patch is 10:45 CET, downtime window 02:00–02:30 UTC on 2024-11-03"),
    ("slack", f"notes are in the doc, call me at {P('415-867-2390')} if the link doesn't work"),
    (
        "slack",
        f"for the demo use the test key {S(V['sk_test'])} — it only works in Stripe test mode",
    ),
    (
        "slack",
        'reminder: API keys never go in code. use `os.environ["API_KEY"]` and the secret store '
        "instead",
    ),
    (
        "slack",
        f"found a leaked key in a public gist: {S(V['aws_key3'])} with secret "
        f"{S(V['aws_secret2'])} — AWS already quarantined it",
    ),
    ("slack", f"the new office number is {P('+44 161 496 0754')}, reception is ext 2200"),
    (
        "slack",
        "npm ci failing with E401 — the NPM_TOKEN secret in GitHub Actions expired. who can "
        "regenerate it?",
    ),
    (
        "slack",
        f"Hugging Face token for the eval runner, read-only: {S(V['hf'])} (expires 2025-01-01)",
    ),
    ("slack", "@ravi chart version bumped 1.8.0 → 1.9.0, app 2.7.0; see PR !2231 and JIRA-1234"),
    (
        "slack",
        f"can you add {E('contractor.nl@extern-bureau.nl')} to #proj-atlas? she starts Monday",
    ),
    (
        "slack",
        f"pager: call {P('+1.415.867.2390')} if I'm not on Slack, otherwise {E('oncall@acme-corp.io')}",
    ),
    (
        "slack",
        f"clone with git@github.com:acme/infra-live.git, then `make plan ENV=staging` (needs VPN, "
        f"gateway {IP('10.8.0.1')})",
    ),
    # -- tickets -------------------------------------------------------------------------
    (
        "ticket",
        "Ticket SUP-20931 | Priority: High | Customer reports login failures since 14:05 UTC. "
        f"User: {E('k.nakamura@example.co.jp')}. Client IP {IP('203.0.113.42')}. Browser: "
        "Chrome 121.0.6167.85.",
    ),
    (
        "ticket",
        f"Customer called from {P('+33 1 42 68 53 00')} about invoice F-2024-118 (1 250,00 €). "
        "Wants the bill reissued to SIRET 732 829 320 00074.",
    ),
    (
        "ticket",
        f"Bug: export fails for accounts with IBAN {B(V['iban_nl'])}; stack trace attached. "
        "Repro on staging, build 2024.03.15-rc2.",
    ),
    (
        "ticket",
        f"Refund request #RF-77120: card {C(V['amex1'])} charged €89.00 twice on 12/02/2024. "
        f"Customer e-mail {E('sophie.martin@orange.fr')}.",
    ),
    (
        "ticket",
        f"User cannot connect to VPN. Assigned IP {IP('10.8.0.23')}, gateway {IP('10.8.0.1')}, "
        f"DNS {IP('1.1.1.1')}. Error code 0x800704C9.",
    ),
    (
        "ticket",
        "Password reset requested for account #552019. The reset link expires in 24h. No "
        "action needed if you didn't request it.",
    ),
    (
        "ticket",
        f"HR-3312: employee changed bank details. Old IBAN {B(V['iban_es'])}, new IBAN "
        f"{B(V['iban_es2'])}. Approved by payroll on 2024-02-28.",
    ),
    (
        "ticket",
        f"The customer's SSN was typed into the free-text field: '{N(V['ssn2'])}'. Please purge "
        "the field and file an incident (INC0041877).",
    ),
    (
        "ticket",
        f"Unable to log in from {IP('198.51.100.7')}: account locked after 5 failed attempts at "
        "08:12:55. Ticket auto-closes after 72h.",
    ),
    (
        "ticket",
        "Android app crashes (Android 14, build 34.0.1) when the phone field has a '(0)' in it. "
        f"Repro: enter {P('+49 (0)89 1234 5678')} and tap Save.",
    ),
    (
        "ticket",
        "Tracking number 1Z999AA10123456784, order 112-4837261-9920135, delivered 2024-01-19.",
    ),
    (
        "ticket",
        f"Richiesta #4471: il cliente chiede la fattura intestata, codice fiscale {N(V['cf2'])}, "
        f"tel. {P('+39 06 6982 1234')}.",
    ),
    (
        "ticket",
        f"Integration broken: our Zapier step posts to {S(V['webhook'])} and gets a 404 since "
        "yesterday.",
    ),
    (
        "ticket",
        "Card declined: BIN 411111, last4 1111, auth code 0A12F9, amount 250.00 USD, MCC 5732",
    ),
    ("ticket", "Customer DOB 1979-11-23, postcode SW1A 1AA, account ref ACC-000981234, tier Gold"),
    (
        "ticket",
        f"Sandbox checkout: use card {C('4111 1111 1111 1111')} with any future expiry and CVC "
        "123; 3-D Secure test card is "
        f"{C('4000 0027 6000 3184')}.",
    ),
    (
        "ticket",
        f"Customer pasted their API key into the chat: {S(V['anthropic1'])}. Please revoke it and "
        f"notify them at {E('dev@lumen-analytics.ai')}.",
    ),
    (
        "ticket",
        "SSO login fails; SAML assertion ID _8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6, "
        "session 3c9f0b8e-5d4a-4b1c-9e2f-7a6b5c4d3e2f",
    ),
    (
        "ticket",
        f"Kunde meldet: Kreditkarte {C(V['mc2'])} wurde zweimal belastet (2 × 59,90 €). "
        f"Rückruf bitte unter {P('0171 2345678')}.",
    ),
    (
        "ticket",
        f"Order {V['order16']} shipped on 2024-02-11; invoice total 1 249,00 €; 2 parcels.",
    ),
    (
        "ticket",
        "A customer says a support agent asked for their SSN over the phone — we never do that. "
        "Escalated to security (SEC-219).",
    ),
    (
        "ticket",
        f"2FA recovery codes regenerated for {E('p.ivanova@helix.bio')}; old codes invalidated.",
    ),
    (
        "ticket",
        f"Client demande la suppression de ses données. E-mail : {E('remi.garnier@free.fr')}, "
        f"tél. {P('+33 6 12 34 56 78')}. Dossier RGPD-2024-77.",
    ),
    (
        "ticket",
        f"Paid with Discover {C(V['disc'])}, receipt shows JCB {C(V['jcb'])} — which one did we "
        "charge? Amount $310.45.",
    ),
    (
        "ticket",
        f"Reclamación: cargo duplicado en la tarjeta {C(V['amex2'])}. Cliente con NIE "
        f"{N(V['nie2'])}, teléfono {P('+34 612 345 678')}.",
    ),
    # -- logs ----------------------------------------------------------------------------
    (
        "log",
        f"2024-03-15T14:22:07.481Z INFO  auth login ok user={E('a.svensson@volvo-partners.se')} "
        f'ip={IP("81.2.69.142")} ua="Mozilla/5.0" latency=42ms',
    ),
    (
        "log",
        "2024-03-15 14:22:09,112 ERROR [pool-3-thread-7] c.a.p.PaymentService - charge failed "
        f"card={C(V['visa2'])} amount=19.99 currency=EUR code=do_not_honor",
    ),
    (
        "log",
        "Mar 15 14:22:11 web-03 sshd[18842]: Failed password for invalid user oracle from "
        f"{IP('185.220.101.4')} port 51322 ssh2",
    ),
    (
        "log",
        'level=warn ts=2024-03-15T14:22:15Z caller=client.go:212 msg="retrying request" '
        "url=https://api.example.com/v2/items?page=3 attempt=2 backoff=1.5s",
    ),
    (
        "log",
        f"DEBUG request headers: {{'Authorization': 'Bearer {S(V['jwt1'])}', 'X-Request-Id': "
        "'8f14e45f-ceea-467a-9a3e-3f6c2b1d0a77'}",
    ),
    (
        "log",
        f"[2024-03-15 14:23:01] worker.1 | connecting to postgres://orders_svc:{S('u8Hq2mZr5Lx')}"
        "@db-primary.internal:5432/orders",
    ),
    (
        "log",
        "2024/03/15 14:23:05 [error] 1123#1123: *98841 upstream timed out (110: Connection timed "
        f"out) while reading response header from upstream, client: {IP('66.249.66.1')}, server: "
        f'shop.example.com, request: "GET /api/cart/7731 HTTP/1.1", upstream: "http://'
        f'{IP("127.0.0.1")}:8081/api/cart/7731"',
    ),
    (
        "log",
        "INFO  kafka.consumer offset=18823341 partition=7 lag=1204 topic=orders.v3 group=billing-2",
    ),
    (
        "log",
        f"WARN  sms sent to={P('+14158672390')} template=otp_login id=SM8a7f2c31 status=queued",
    ),
    ("log", f"ERROR github sync failed: 401 Bad credentials (token={S(V['ghp2'])})"),
    (
        "log",
        f"audit user_id=88231 action=update_profile field=phone old={P('+1 (312) 555-0199')} "
        f"new={P('+1 (312) 555-0176')} at=2024-03-15T14:25:00Z",
    ),
    (
        "log",
        "GET /health 200 3ms | GET /metrics 200 11ms | POST /v1/embeddings 200 184ms (batch=32, "
        "dim=768)",
    ),
    (
        "log",
        "java.lang.IllegalStateException: build 1.4.0.2 is incompatible with schema 27\n"
        "\tat com.acme.Loader.load(Loader.java:118)",
    ),
    (
        "log",
        f"2024-03-15 14:26:40 INFO ipsec: tunnel up local={IP('2001:db8:85a3::8a2e:370:7334')} "
        f"remote={IP('2001:db8:1::ab9:c0a8:102')}",
    ),
    (
        "log",
        f"pod/checkout-7d9f8b6c5-x2kqp restarted 3 times; image sha256:{V['sha256']}",
    ),
    (
        "log",
        f"[notify] receipt sent to {E('billing+receipts@fernweh-reisen.de')} (order "
        "2024-DE-003381)",
    ),
    (
        "log",
        f'auth0: type=fp description="Wrong email or password." user_name={E("tom.h@contoso.com")} '
        f"ip={IP('2a02:8070:a283:ef00::1')}",
    ),
    ("log", f"WARN jwt verification failed: token={S(V['jwt2'])} reason=expired"),
    ("log", f"sendgrid: using key {S(V['sendgrid'])} for transactional mail"),
    (
        "log",
        f"2024-03-15T15:01:12Z dns query from {IP('10.0.5.21')} for api.internal A -> "
        f"{IP('10.0.7.3')} ttl=300",
    ),
    ("log", "device enrolled imei=356938035643809 model=SM-G991B os=14 policy=corp-default"),
    (
        "log",
        f"health check {IP('10.0.0.7')}:8080 ok; {IP('10.0.0.8')}:8080 timeout after 5000 ms",
    ),
    (
        "log",
        "2024-03-15 15:04:33 INFO scheduler job=nightly-export run=20240315.4 rows=1204411 "
        "duration=00:14:52 exit=0",
    ),
    (
        "log",
        f"GET /callback?code=4/0AX4XfWh&state=af0ifjsldkj&access_token={S(V['jwt3'])} 302",
    ),
    # -- config --------------------------------------------------------------------------
    (
        "config",
        f"DATABASE_URL=postgresql://app:{S('hT4kq9Wv2pLm')}@{IP('10.0.3.12')}:5432/app\n"
        f"REDIS_URL=redis://cache.internal:6379/0\nSTRIPE_SECRET_KEY={S(V['sk_live2'])}\n"
        "LOG_LEVEL=info",
    ),
    (
        "config",
        f"[default]\naws_access_key_id = {S(V['aws_key2'])}\naws_secret_access_key = "
        f"{S(V['aws_secret1'])}\nregion = eu-west-1",
    ),
    (
        "config",
        f"smtp:\n  host: smtp.mailgun.org\n  port: 587\n  username: "
        f"{E('postmaster@mg.shop-example.com')}\n  password: {S('f3e9a1c07b2d')}\n"
        f'  from: "Shop <{E("no-reply@shop-example.com")}>"',
    ),
    (
        "config",
        "# Never commit real values here\nAPI_KEY=\nAPI_SECRET=changeme\nPASSWORD_MIN_LENGTH=12\n"
        "SESSION_TIMEOUT=3600",
    ),
    (
        "config",
        f"OPENAI_API_KEY={S(V['openai_proj'])}\nANTHROPIC_API_KEY={S(V['anthropic2'])}\n"
        "MODEL=claude-3-5-sonnet-20241022\nMAX_TOKENS=4096",
    ),
    (
        "config",
        f"tls:\n  cert_file: /etc/ssl/app.crt\n  key: |\n    {S(V['pem_rsa'])}\n  min_version: '1.2'",
    ),
    (
        "config",
        f"listen_addresses = '{IP('0.0.0.0')}'\nport = 5432\nmax_connections = 200\n"
        "shared_buffers = 4GB",
    ),
    (
        "config",
        f"allowed_cidrs:\n  - {IP('10.0.0.0')}/8\n  - {IP('192.168.0.0')}/16\n  - "
        f"{IP('2001:db8::')}/32",
    ),
    ("config", f"github:\n  token: {S(V['github_pat'])}\n  org: acme-platform\n  repo: infra-live"),
    (
        "config",
        f"# push mirror\nremote_url = https://oauth2:{S(V['glpat'])}@gitlab.com/acme/api.git",
    ),
    (
        "config",
        "services:\n  db:\n    image: postgres:16.2\n    environment:\n      POSTGRES_PASSWORD: "
        '${POSTGRES_PASSWORD}\n    ports:\n      - "5432:5432"',
    ),
    (
        "config",
        f"[mysqld]\nbind-address = {IP('10.1.2.3')}\nuser = mysql\npassword = {S('Xk29mQz8rTq')}",
    ),
    ("config", f"HF_TOKEN={S(V['hf'])}\nWANDB_PROJECT=rag-eval\nSEED=1234\nBATCH_SIZE=16"),
    ("config", f"google_maps:\n  api_key: {S(V['aiza'])}\n  region: de"),
    ("config", f"TELEGRAM_BOT_TOKEN={S(V['telegram'])}\nCHAT_ID=-1001234567890"),
    (
        "config",
        f'[client]\nuser=report_ro\npassword="{S("r3p0rt-R34d-0nly")}"\nhost=reporting.db.internal',
    ),
    (
        "config",
        f"proxy:\n  http: http://proxyuser:{S('Pr0xyPass99')}@proxy.corp.local:3128\n"
        f"  no_proxy: localhost,{IP('127.0.0.1')},.corp.local",
    ),
    (
        "config",
        f"ntp:\n  servers:\n    - {IP('162.159.200.1')}\n    - time.google.com\n"
        "  drift_file: /var/lib/ntp/drift",
    ),
    (
        "config",
        f"slack:\n  bot_token: {S(V['slack2'])}\n  signing_secret: {S(V['hex32'])}\n"
        "  channel: '#alerts'",
    ),
    (
        "config",
        "retry:\n  attempts: 3\n  backoff_ms: 250\n  timeout: 30s\nserver:\n  port: 8443\n"
        "  workers: 4\n  request_id_header: X-Request-Id\n  uuid: 123e4567-e89b-12d3-a456-426614174000",
    ),
    (
        "config",
        f'MONGO_URI="mongodb+srv://analytics:{S("Zq8vN3kR7pWd")}@cluster0.ab1cd.mongodb.net/prod"\n'
        f"OPENAI_ORG=org-2kQp8fXrT1\nOPENAI_KEY={S(V['openai_svc'])}",
    ),
    # -- notes ---------------------------------------------------------------------------
    (
        "notes",
        f"1:1 with Dana (HR): relocation approved; new home phone {P('+1 503 284 7719')}; salary "
        f"review in Q3; the SSN on file needs correcting to {N(V['ssn3'])}.",
    ),
    (
        "notes",
        "Incident retro 2024-03-15: root cause was an expired TLS cert on lb-2; MTTR 47 min; "
        "action items AI-1 to AI-6; owner @rkim; next review 03/22.",
    ),
    (
        "notes",
        f"Entretien annuel — Mme Lefèvre. NIR {N(V['nir2'])}, téléphone {P('+33 6 98 76 54 32')}, "
        "souhaite passer à 80 % à partir du 1er septembre.",
    ),
    (
        "notes",
        "Besprechung 12.03.: Kundennummer 100-2231-77, Vertrag Nr. DE-2024-0193, Ansprechpartner "
        f"erreichbar unter {P('+49 151 23456789')} oder {E('m.schulz@kanzlei-schulz.de')}.",
    ),
    (
        "notes",
        "Budget: total $1,204,500.00; Q1 spend 312.4k; headcount 42 → 47; cost per seat "
        "€18.75/month; FX 1.0842",
    ),
    (
        "notes",
        "Vendor onboarding: W-9 received, EIN 12-3456789 (company, not personal), bank IBAN "
        f"{B(V['iban_gb'])} confirmed by phone.",
    ),
    (
        "notes",
        f"Reunión con proveedor: factura 2024/118, importe 3.450,00 €, IBAN {B(V['iban_es3'])}, "
        f"contacto {E('facturacion@proveedora-sur.es')}.",
    ),
    (
        "notes",
        f"Interview: candidate prefers e-mail ({E('ana.lopez.dev@gmail.com')}) to phone; "
        "available from 01/04; expects 55k.",
    ),
    (
        "notes",
        "Travel: flight LH 2471 departs 07:35, booking ref K7XQ2P, seat 14C, hotel confirmation "
        "88314527, taxi ~45 €.",
    ),
    (
        "notes",
        "Secret Santa draw is on Friday! Budget is 20€. Whoever you get, the secret is safe "
        "with me.",
    ),
    (
        "notes",
        "IT: new laptop for J. Park, serial C02XK1YZJGH5, MAC a4:83:e7:12:9b:0c, asset 2024-0412, "
        f"DHCP reservation {IP('10.40.2.118')}.",
    ),
    (
        "notes",
        f"Payroll: transfer to {B(V['iban_it'])} for C. Greco; codice fiscale {N(V['cf3'])}; net "
        "€2.318,44.",
    ),
    (
        "notes",
        f"Handover: root password for the old NAS is {S('nas-Root-7781')} (decommissioned next "
        f"month); the NAS is at {IP('192.168.10.5')}.",
    ),
    (
        "notes",
        f"Team lunch goes on the company Amex {C(V['amex2'])}; keep receipts; limit $500/day.",
    ),
    (
        "notes",
        "Reading list: RFC 7519 §4.1, ISO 8601 dates, ISBN 978-3-16-148410-0, DOI 10.1000/182, "
        "OID 1.3.6.1.4.1.311",
    ),
    (
        "notes",
        f"DNI del nuevo técnico: {N(V['dni2'])}; NIE de la becaria: {N(V['nie2'])}; ambos "
        "pendientes de alta.",
    ),
    (
        "notes",
        f"Neuer Mitarbeiter: Steuer-ID {N(V['steuer'])} (liegt in der Personalakte), Telefon "
        f"{P('+49 40 12345678')}, Eintritt 01.04.2025.",
    ),
    (
        "notes",
        f"UK starter: NI number {N('JG 10 37 42 A')}, mobile {P('07911 123456')}, starts 3 June.",
    ),
    (
        "notes",
        "Price review: SKU 8841-2290-11 from $19.99 to $24.99 (+25%); bundle 3 for $59; "
        "postcodes 10115, 28013 and 75008 first.",
    ),
    (
        "notes",
        f"Belgian supplier: IBAN {B(V['iban_be'])}, VAT BE0403.170.701, contact "
        f"{P('+32 2 555 12 34')}.",
    ),
    (
        "notes",
        "Vault migration: all DB passwords rotate on 2024-04-01; the old token TTL was 8h, new "
        "TTL 1h; secret engine kv-v2.",
    ),
    (
        "notes",
        f"Call log: 09:12 {P('+1 212 736 3100')} (2 min), 09:40 {P('+1 800 692 7753')} "
        "(support, 18 min), 11:05 internal x4402.",
    ),
    (
        "notes",
        f"Visiting our Tokyo partner: office {P('+81 3-1234-5678')}, Mumbai desk "
        f"{P('+91 98765 43210')}, São Paulo {P('+55 11 91234-5678')}.",
    ),
]


def parse(template: str) -> tuple[str, list[dict]]:
    text, spans, at = [], [], 0
    length = 0
    for mark in MARK.finditer(template):
        plain = template[at : mark.start()]
        text.append(plain)
        length += len(plain)
        kind, value = mark.group(1), mark.group(2)
        spans.append({"start": length, "end": length + len(value), "kind": kind})
        text.append(value)
        length += len(value)
        at = mark.end()
    text.append(template[at:])
    return "".join(text), spans


def main() -> None:
    lines = []
    for n, (source, template) in enumerate(TEXTS, 1):
        text, spans = parse(template)
        assert "[[" not in text and "]]" not in text, template
        for span in spans:
            value = text[span["start"] : span["end"]]
            assert value and value == value.strip(), (n, value)
        row = {"id": f"{source}-{n:03d}", "source": source, "text": text, "spans": spans}
        lines.append(json.dumps(row, ensure_ascii=False))
    (HERE / "labelled.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} texts, {sum(len(json.loads(x)['spans']) for x in lines)} spans")


if __name__ == "__main__":
    main()
