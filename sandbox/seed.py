"""Demo data for the local Stripe sandbox: a believable year of a subscription business, through the SDK only.

    python -m sandbox.seed --api-base http://127.0.0.1:12111 [--customers 2000] [--seed 7] [--truth-file F] [--messy]

Why it is built this way:
- The content comes from `random.Random(seed)` in a pure planning step (`plan()`), so the same seed gives the
  same customers, subscriptions, failures and duplicates; only the ids and absolute dates come from the sandbox.
- History is real, not back-dated: the sandbox clock starts 12 months ago (`/_sandbox/clock/set`, empty sandbox
  only) and is advanced to today step by step, so renewals, failed charges and retries are the sandbox's own.
- Every customer has exactly one subscription, and every subscription status occurs; failures come from
  Stripe's test cards (swapped in as the default card before a renewal), so decline codes are the sandbox's.
- Some failures recover (`Planner.recoveries`): an active subscription's renewal fails on a declining card, the
  customer puts a good card on file within a day or two, and the invoice is paid at once (`/pay`) or by the
  sandbox's next retry — so the failed-vs-recovered chart and the recovery rate have real figures.
- About 5% of the records are planted duplicates (the same person twice). The answer key goes only to
  `--truth-file`, never into Stripe (metadata would leak it to the detector being measured). Its format:
  `{"seed": 7, "customers": 2000, "clusters": [["cus_…", "cus_…"], …], "signals": ["email_case", …]}`, one
  signal per cluster (email_case, email_plus, gmail_dots, phone, card).
- Each card is a distinct Luhn-valid number, so fingerprints are unique per card except where a duplicate
  reuses one on purpose; the decline test cards are shared by design, as they are on a real test account.
"""

from __future__ import annotations

import argparse
import calendar
import http.client
import json
import random
import sys
import threading
import time
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers
import stripe

DAY = 86400
HOUR = 3600
HISTORY_DAYS = 365
DEFAULT_KEY = "sk_test_sandbox_seed"
DASHBOARD_WEBHOOK_URL = "http://127.0.0.1:8501/webhooks/stripe"
DUPLICATE_SHARE = 0.05
PAST_DUE_MAX_DAYS = 5.0  # a failure younger than this is still being retried (the sandbox retries on days 3, 5, 7)
RECOVERY_SHARE = 0.15  # of active monthly subscriptions: one renewal fails, then the card is fixed and it is paid
RECOVERY_PAY_NOW = 0.5  # of those: paid right after the card update (the others by the sandbox's next retry)

# Stripe's test cards: one that always pays and four that attach but decline every charge.
GOOD_TEST_CARD = "4242424242424242"
DECLINE_CARDS: dict[str, str] = {
    "generic_decline": "4000000000000341",
    "insufficient_funds": "4000000000009995",
    "expired_card": "4000000000000069",
    "incorrect_cvc": "4000000000000127",
}
STATUSES = ["active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused"]
# Stories a subscription lives through, and the share of each (every story gets at least one subscription).
# "canceled" is a customer's own choice; "canceled_payment_failed" ran out of retries under the old policy.
STORY_SHARE = {
    "active": 0.58, "trialing": 0.07, "past_due": 0.06, "unpaid": 0.04, "canceled": 0.09,
    "canceled_payment_failed": 0.06, "incomplete": 0.02, "incomplete_expired": 0.05, "paused": 0.03,
}
# Stories that end with a declined card, most visible first (they get distinct decline codes first).
FAILING_STORIES = ["past_due", "unpaid", "canceled_payment_failed", "incomplete", "incomplete_expired"]
# Dunning policy: after the last retry the account first canceled and wrote the invoice off; on this day of
# the year it switched to marking subscriptions unpaid and leaving the invoice open (both are Stripe settings).
POLICY_CHANGE_DAY = 180
OLD_POLICY = {"final_action": "cancel", "final_invoice": "uncollectible"}
NEW_POLICY = {"final_action": "unpaid", "final_invoice": "open"}
SIGNALS = ["email_case", "email_plus", "gmail_dots", "phone", "card"]

# --- people: names in several scripts, with the romanisation their email address uses ------------------------

# Each culture: first names, last names as (written, romanised) pairs; family_first for East Asian order.
_L = "latin"
CULTURES: dict[str, dict[str, Any]] = {
    "en": {"first": ["James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Isabella",
                     "Lucas", "Mia", "Henry", "Charlotte", "Jack", "Amelia", "Owen", "Harper", "Samuel", "Evelyn",
                     "Daniel", "Abigail", "Matthew", "Emily", "Ryan", "Grace", "Nathan", "Chloe", "Aaron", "Zoe"],
           "last": ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
                    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
                    "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams",
                    "O'Brien", "Nelson", "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell"]},
    "es": {"first": ["José", "María", "Jesús", "Lucía", "Álvaro", "Sofía", "Andrés", "Inés", "Raúl", "Begoña",
                     "Iñaki", "Mónica", "Ramón", "Ángela", "Sebastián", "Verónica", "Martín", "Rocío"],
           "last": ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez",
                    "Gómez", "Núñez", "Peña", "Jiménez", "Muñoz", "Álvarez", "Ibáñez", "Castillo", "Ortega"]},
    "fr": {"first": ["François", "Hélène", "Jérôme", "Chloé", "Benoît", "Élodie", "Loïc", "Gaëlle", "Théo",
                     "Noémie", "Rémi", "Céline", "Maël", "Léa", "Gérard", "Aurélie"],
           "last": ["Lefèvre", "Dubois", "Moreau", "Laurent", "Girard", "Bérénger", "Fournier", "Mercier",
                    "Faure", "Rousseau", "Chevalier", "Lemaître", "Gauthier", "Périer", "Bonnet"]},
    "de": {"first": ["Jürgen", "Björn", "Käthe", "Günther", "Jörg", "Anja", "Lukas", "Sören", "Lena", "Maximilian",
                     "Jana", "Tobias", "Hannah", "Florian", "Marlene"],
           "last": ["Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Schäfer", "Köhler", "Größ", "Wagner",
                    "Becker", "Hoffmann", "Krüger", "Schröder", "Neumann", "Zimmermann"]},
    "pt": {"first": ["João", "Conceição", "Antônio", "Luíza", "Gonçalo", "Fábio", "Letícia", "Thiago", "Beatriz",
                     "Vinícius", "Larissa", "Caio"],
           "last": ["Silva", "Santos", "Oliveira", "Conceição", "Gonçalves", "Araújo", "Magalhães", "Simões",
                    "Pereira", "Ribeiro", "Carvalho", "Assunção"]},
    "pl": {"first": ["Łukasz", "Małgorzata", "Paweł", "Agnieszka", "Michał", "Katarzyna", "Wojciech", "Żaneta"],
           "last": ["Wójcik", "Kowalczyk", "Woźniak", "Łukasik", "Zieliński", "Dąbrowski", "Kamiński", "Gałązka"],
           "female": {"Małgorzata", "Agnieszka", "Katarzyna", "Żaneta"},
           "fem_last": {"Zieliński": "Zielińska", "Dąbrowski": "Dąbrowska", "Kamiński": "Kamińska"}},
    "tr": {"first": ["Çağlar", "Şule", "Emre", "Gökhan", "Ayşe", "İpek", "Mehmet", "Zeynep", "Barış"],
           "last": ["Şahin", "Öztürk", "Yılmaz", "Çelik", "Doğan", "Kılıç", "Aydın", "Güneş"]},
    "sv": {"first": ["Åsa", "Björn", "Märta", "Linnéa", "Göran", "Elin", "Oskar", "Sven"],
           "last": ["Lindström", "Öberg", "Åkesson", "Johansson", "Nyström", "Bergqvist", "Sjöberg"]},
    "ru": {"first": [("Иван", "ivan"), ("Ольга", "olga"), ("Дмитрий", "dmitry"), ("Анна", "anna"),
                     ("Сергей", "sergey"), ("Екатерина", "ekaterina"), ("Алексей", "alexey"), ("Мария", "maria"),
                     ("Никита", "nikita"), ("Юлия", "yulia"), ("Артём", "artyom"), ("Наталья", "natalya")],
           "last": [("Петров", "petrov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"), ("Попов", "popov"),
                    ("Соколов", "sokolov"), ("Лебедев", "lebedev"), ("Новиков", "novikov"), ("Морозов", "morozov"),
                    ("Волков", "volkov"), ("Фёдоров", "fedorov")],
           "script": "cyrillic", "female": {"Ольга", "Анна", "Екатерина", "Мария", "Юлия", "Наталья"}},
    "el": {"first": [("Γιώργος", "giorgos"), ("Μαρία", "maria"), ("Νίκος", "nikos"), ("Ελένη", "eleni"),
                     ("Δημήτρης", "dimitris"), ("Κατερίνα", "katerina"), ("Κώστας", "kostas"), ("Σοφία", "sofia")],
           "last": [("Παπαδόπουλος", "papadopoulos"), ("Νικολάου", "nikolaou"), ("Γεωργίου", "georgiou"),
                    ("Οικονόμου", "oikonomou"), ("Παπαδάκης", "papadakis"), ("Βασιλείου", "vasileiou")],
           "script": "greek", "female": {"Μαρία", "Ελένη", "Κατερίνα", "Σοφία"},
           "fem_last": {"Παπαδόπουλος": ("Παπαδοπούλου", "papadopoulou"), "Παπαδάκης": ("Παπαδάκη", "papadaki")}},
    "ja": {"first": [("健", "ken"), ("花子", "hanako"), ("翔太", "shota"), ("美咲", "misaki"), ("大輔", "daisuke"),
                     ("陽菜", "hina"), ("拓也", "takuya"), ("さくら", "sakura")],
           "last": [("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
                    ("渡辺", "watanabe"), ("伊藤", "ito"), ("山本", "yamamoto"), ("中村", "nakamura")],
           "script": "cjk", "family_first": True},
    "zh": {"first": [("伟", "wei"), ("娜", "na"), ("秀英", "xiuying"), ("敏", "min"), ("静", "jing"),
                     ("磊", "lei"), ("洋", "yang"), ("婷", "ting")],
           "last": [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
                    ("黄", "huang"), ("赵", "zhao")],
           "script": "cjk", "family_first": True, "no_space": True},
    "ko": {"first": [("민준", "minjun"), ("서연", "seoyeon"), ("지훈", "jihoon"), ("하은", "haeun"),
                     ("도윤", "doyun"), ("수아", "sua")],
           "last": [("김", "kim"), ("이", "lee"), ("박", "park"), ("최", "choi"), ("정", "jung")],
           "script": "cjk", "family_first": True, "no_space": True},
    "ar": {"first": [("محمد", "mohammed"), ("فاطمة", "fatima"), ("أحمد", "ahmed"), ("مريم", "maryam"),
                     ("علي", "ali"), ("نور", "nour"), ("خالد", "khaled"), ("ليلى", "layla"), ("يوسف", "youssef")],
           "last": [("العلي", "alali"), ("الحسن", "alhassan"), ("المنصور", "almansour"), ("الشمري", "alshammari"),
                    ("القحطاني", "alqahtani"), ("حداد", "haddad"), ("الزهراني", "alzahrani")],
           "script": "arabic"},
    "hi": {"first": ["Priya", "Arjun", "Ananya", "Rohan", "Kavya", "Vikram", "Aditi", "Rahul"],
           "last": ["Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Mehta", "Banerjee"]},
}

# Country → culture, locale, currency, share of customers, phone plan, mail providers, cities.
# Phone plan: (country calling code, leading digits choices, total national digits); numbers are validated.
COUNTRIES: dict[str, dict[str, Any]] = {
    "US": {"culture": "en", "locale": "en-US", "cur": "usd", "w": 30, "phone": ("1", ["212", "415", "312", "617",
           "206", "512", "303", "404", "305", "646", "718", "702", "503", "619"], 10),
           "mail": ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com"], "tld": "com",
           "cities": [("San Francisco", "CA", "94103"), ("New York", "NY", "10012"), ("Austin", "TX", "78701"),
                      ("Chicago", "IL", "60607"), ("Seattle", "WA", "98109"), ("Boston", "MA", "02116"),
                      ("Denver", "CO", "80202"), ("Portland", "OR", "97209")],
           "streets": ["Market St", "Main St", "Oak Ave", "Maple Dr", "2nd Ave", "Pine St", "Elm St", "Broadway"]},
    "CA": {"culture": "en", "locale": "en-CA", "cur": "usd", "w": 4, "phone": ("1", ["416", "604", "514", "403"], 10),
           "mail": ["gmail.com", "outlook.com", "yahoo.ca"], "tld": "ca",
           "cities": [("Toronto", "ON", "M5V 2T6"), ("Vancouver", "BC", "V6B 1A1"), ("Montréal", "QC", "H2Y 1C6")],
           "streets": ["King St W", "Queen St", "Rue Sainte-Catherine", "Granville St"]},
    "GB": {"culture": "en", "locale": "en-GB", "cur": "gbp", "w": 10, "phone": ("44", ["74", "75", "77", "78", "79"],
           10), "mail": ["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"], "tld": "co.uk",
           "cities": [("London", "", "EC1V 9HX"), ("Manchester", "", "M1 1AE"), ("Leeds", "", "LS1 4DY"),
                      ("Bristol", "", "BS1 5TR"), ("Edinburgh", "", "EH1 1YZ")],
           "streets": ["High Street", "Church Road", "Station Road", "Victoria Road", "Mill Lane"]},
    "ES": {"culture": "es", "locale": "es", "cur": "eur", "w": 6, "phone": ("34", ["6"], 9),
           "mail": ["gmail.com", "hotmail.es", "yahoo.es", "telefonica.net"], "tld": "es",
           "cities": [("Madrid", "M", "28013"), ("Barcelona", "B", "08002"), ("Sevilla", "SE", "41004"),
                      ("València", "V", "46002")],
           "streets": ["Calle Mayor", "Avenida de la Constitución", "Calle de Alcalá", "Plaza de España"]},
    "MX": {"culture": "es", "locale": "es-419", "cur": "usd", "w": 3, "phone": ("52", ["55", "33", "81"], 10),
           "mail": ["gmail.com", "hotmail.com", "outlook.com"], "tld": "com.mx",
           "cities": [("Ciudad de México", "CDMX", "06600"), ("Guadalajara", "JAL", "44100")],
           "streets": ["Avenida Reforma", "Calle Madero", "Avenida Insurgentes"]},
    "FR": {"culture": "fr", "locale": "fr", "cur": "eur", "w": 7, "phone": ("33", ["6", "7"], 9),
           "mail": ["gmail.com", "orange.fr", "free.fr", "laposte.net"], "tld": "fr",
           "cities": [("Paris", "", "75011"), ("Lyon", "", "69002"), ("Marseille", "", "13001"),
                      ("Toulouse", "", "31000")],
           "streets": ["rue de la Paix", "boulevard Voltaire", "avenue Jean Jaurès", "rue Pasteur"]},
    "DE": {"culture": "de", "locale": "de", "cur": "eur", "w": 8, "phone": ("49", ["151", "160", "170", "176"], 11),
           "mail": ["gmail.com", "web.de", "gmx.de", "t-online.de"], "tld": "de",
           "cities": [("Berlin", "", "10115"), ("München", "", "80331"), ("Hamburg", "", "20095"),
                      ("Köln", "", "50667")],
           "streets": ["Hauptstraße", "Schillerstraße", "Goethestraße", "Bahnhofstraße", "Lindenallee"]},
    "BR": {"culture": "pt", "locale": "pt-BR", "cur": "usd", "w": 4, "phone": ("55", ["119", "219", "319"], 11),
           "mail": ["gmail.com", "hotmail.com", "uol.com.br", "bol.com.br"], "tld": "com.br",
           "cities": [("São Paulo", "SP", "01310-100"), ("Rio de Janeiro", "RJ", "20040-002"),
                      ("Belo Horizonte", "MG", "30130-010")],
           "streets": ["Avenida Paulista", "Rua Augusta", "Rua da Conceição", "Avenida Atlântica"]},
    "PT": {"culture": "pt", "locale": "pt", "cur": "eur", "w": 2, "phone": ("351", ["91", "93", "96"], 9),
           "mail": ["gmail.com", "sapo.pt", "hotmail.com"], "tld": "pt",
           "cities": [("Lisboa", "", "1100-148"), ("Porto", "", "4000-322")],
           "streets": ["Rua Augusta", "Avenida da Liberdade", "Rua de Santa Catarina"]},
    "PL": {"culture": "pl", "locale": "pl", "cur": "eur", "w": 2, "phone": ("48", ["50", "51", "53", "60", "69"], 9),
           "mail": ["gmail.com", "wp.pl", "onet.pl", "o2.pl"], "tld": "pl",
           "cities": [("Warszawa", "", "00-001"), ("Kraków", "", "31-001"), ("Łódź", "", "90-001")],
           "streets": ["ul. Marszałkowska", "ul. Floriańska", "ul. Piotrkowska"]},
    "TR": {"culture": "tr", "locale": "tr", "cur": "eur", "w": 2, "phone": ("90", ["53", "54", "55"], 10),
           "mail": ["gmail.com", "hotmail.com", "yandex.com.tr"], "tld": "com.tr",
           "cities": [("İstanbul", "", "34000"), ("Ankara", "", "06000"), ("İzmir", "", "35000")],
           "streets": ["İstiklal Caddesi", "Atatürk Bulvarı", "Bağdat Caddesi"]},
    "SE": {"culture": "sv", "locale": "sv", "cur": "eur", "w": 2, "phone": ("46", ["70", "72", "73", "76"], 9),
           "mail": ["gmail.com", "telia.com", "hotmail.se"], "tld": "se",
           "cities": [("Stockholm", "", "111 22"), ("Göteborg", "", "411 01"), ("Malmö", "", "211 20")],
           "streets": ["Drottninggatan", "Storgatan", "Kungsgatan"]},
    "RU": {"culture": "ru", "locale": "ru", "cur": "usd", "w": 4, "phone": ("7", ["91", "92", "95", "98"], 10),
           "mail": ["mail.ru", "yandex.ru", "gmail.com", "rambler.ru"], "tld": "ru",
           "cities": [("Москва", "", "101000"), ("Санкт-Петербург", "", "190000"), ("Казань", "", "420111")],
           "streets": ["ул. Ленина", "Невский проспект", "ул. Тверская", "ул. Баумана"]},
    "GR": {"culture": "el", "locale": "el", "cur": "eur", "w": 2, "phone": ("30", ["69"], 10),
           "mail": ["gmail.com", "yahoo.gr", "otenet.gr"], "tld": "gr",
           "cities": [("Αθήνα", "", "105 57"), ("Θεσσαλονίκη", "", "546 24")],
           "streets": ["Οδός Ερμού", "Λεωφόρος Συγγρού", "Οδός Τσιμισκή"]},
    "JP": {"culture": "ja", "locale": "ja", "cur": "usd", "w": 4, "phone": ("81", ["90", "80", "70"], 10),
           "mail": ["gmail.com", "yahoo.co.jp", "docomo.ne.jp", "icloud.com"], "tld": "co.jp",
           "cities": [("東京都千代田区", "東京都", "100-0005"), ("大阪市北区", "大阪府", "530-0001"),
                      ("横浜市西区", "神奈川県", "220-0012")],
           "streets": ["丸の内", "梅田", "みなとみらい", "銀座"]},
    "CN": {"culture": "zh", "locale": "zh", "cur": "usd", "w": 3, "phone": ("86", ["13", "15", "18"], 11),
           "mail": ["qq.com", "163.com", "126.com", "gmail.com"], "tld": "cn",
           "cities": [("上海市", "上海", "200000"), ("北京市", "北京", "100000"), ("深圳市", "广东", "518000")],
           "streets": ["南京东路", "长安街", "深南大道"]},
    "KR": {"culture": "ko", "locale": "ko", "cur": "usd", "w": 2, "phone": ("82", ["10"], 10),
           "mail": ["naver.com", "gmail.com", "daum.net"], "tld": "co.kr",
           "cities": [("서울특별시", "서울", "04524"), ("부산광역시", "부산", "48058")],
           "streets": ["세종대로", "테헤란로", "해운대로"]},
    "SA": {"culture": "ar", "locale": "ar", "cur": "usd", "w": 2, "phone": ("966", ["50", "53", "55"], 9),
           "mail": ["gmail.com", "hotmail.com", "outlook.sa"], "tld": "sa",
           "cities": [("الرياض", "", "12211"), ("جدة", "", "21442")],
           "streets": ["طريق الملك فهد", "شارع التحلية", "طريق الأمير سلطان"]},
    "AE": {"culture": "ar", "locale": "ar", "cur": "usd", "w": 2, "phone": ("971", ["50", "52", "55"], 9),
           "mail": ["gmail.com", "hotmail.com", "eim.ae"], "tld": "ae",
           "cities": [("دبي", "", "00000"), ("أبوظبي", "", "00000")],
           "streets": ["شارع الشيخ زايد", "شارع الوصل", "شارع حمدان"]},
    "IN": {"culture": "hi", "locale": "en-IN", "cur": "usd", "w": 3, "phone": ("91", ["98", "99", "97", "70"], 10),
           "mail": ["gmail.com", "yahoo.co.in", "rediffmail.com"], "tld": "in",
           "cities": [("Bengaluru", "KA", "560001"), ("Mumbai", "MH", "400001"), ("Pune", "MH", "411001")],
           "streets": ["MG Road", "Linking Road", "FC Road"]},
}
COMPANY_WORDS = ["acme", "northwind", "bluepeak", "lumen", "orbit", "kestrel", "fjord", "cobalt", "tidal", "nimbus",
                 "quartz", "ember", "harbor", "juniper", "vertex", "solace", "meridian", "atlas", "pinecone", "ferro",
                 "helix", "sable", "aurora", "basalt", "cedar", "delta", "zephyr", "onyx", "willow", "prism"]
COMPANY_SUFFIX = ["labs", "works", "studio", "tech", "data", "systems", "digital", "co", "media", "cloud"]
PLUS_TAGS = ["billing", "shop", "stripe", "work", "2025", "news", "saas", "receipts"]
SIGNUP_SOURCES = ["web", "web", "web", "ios", "android", "sales"]

# --- the catalogue -------------------------------------------------------------------------------------------

PRODUCTS = [
    # key, name, description, monthly amount in (usd, eur, gbp) minor units, per seat
    ("starter", "Starter", "For individuals: 1 project, email support.", (1200, 1100, 1000), False),
    ("team", "Team", "Per seat: unlimited projects, shared workspaces.", (2900, 2700, 2400), True),
    ("business", "Business", "SSO, audit log, 99.9% SLA.", (19900, 18500, 16500), False),
    ("priority_support", "Priority support", "Add-on: 1-hour response, named engineer.", (4900, 4500, 3900), False),
]
CURRENCIES = ("usd", "eur", "gbp")
YEARLY_MONTHS = 10  # a yearly price costs ten months


def _fold(text: str) -> str:
    """ASCII for an email local part: accents dropped, letters NFKD cannot split mapped by hand."""
    text = text.casefold().replace("ß", "ss").replace("ł", "l").replace("ı", "i").replace("'", "")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and (c.isalnum() or c in ".-_"))


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


def grid(offset: int, horizon: int) -> int:
    """An action time rounded up to the clock's step: a day, or an hour in the last two days.

    The seed advances the sandbox clock once per step, so fewer steps mean fewer round trips.
    """
    step = HOUR if horizon - offset <= 2 * DAY else DAY
    return horizon - (horizon - offset) // step * step


def add_months(ts: int, months: int) -> int:
    """Calendar months as Stripe bills them: same day and time, clamped to the month's last day."""
    d = datetime.fromtimestamp(ts, UTC)
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


# --- the plan ------------------------------------------------------------------------------------------------


@dataclass
class Person:
    """What one customer record says about a person (the Stripe customer's content)."""

    name: str
    email: str
    phone: str | None
    country: str
    address: dict[str, str]
    locales: list[str]
    currency: str
    card: str | None  # the number of the card on file at signup (None: no card)
    metadata: dict[str, str]
    balance: int = 0
    tax_id: tuple[str, str] | None = None


@dataclass
class SubPlan:
    """One subscription: what to buy, when, and which story it lives through until today."""

    story: str  # one of STORY_SHARE: how it lives until today
    status: str  # the status it should end the year in
    items: list[tuple[str, int]]  # (price lookup key, quantity)
    interval: str
    trial_days: int = 0
    decline: str | None = None  # decline code of the card that will fail it
    switch_card_at: int | None = None  # offset: when the failing card becomes the default
    cancel_at: int | None = None  # offset: voluntary cancellation
    cancel_at_period_end_at: int | None = None  # offset: customer asks to stop at period end


@dataclass
class CustomerPlan:
    index: int
    person: Person
    created: int  # seconds after the clock start
    sub: SubPlan
    cluster: int | None = None  # planted duplicate cluster number (truth only)


@dataclass(frozen=True)
class RecoveryPlan:
    """A renewal of an active subscription that fails and is then paid after all (a recovered failure)."""

    index: int  # the customer
    decline: str  # decline code of the card that fails the renewal
    fail_card_at: int  # offset: the declining card becomes the default, before the renewal
    fix_card_at: int  # offset: a good card replaces it, before the sandbox's first retry (3 days after)
    card: str  # the good card's number (unique: only Stripe's decline cards are shared)
    pay_now: bool  # the open invoice is paid right after the card update; otherwise the next retry pays it


@dataclass
class Plan:
    seed: int
    start: int  # epoch of the clock start (12 months before end)
    end: int  # epoch the clock ends at
    customers: list[CustomerPlan]
    clusters: list[tuple[str, list[int]]] = field(default_factory=list)  # (signal, customer indexes)
    recoveries: list[RecoveryPlan] = field(default_factory=list)

    def steps(self) -> list[tuple[int, int, str]]:
        """(offset, customer index, action) for every action, sorted by time."""
        out: list[tuple[int, int, str]] = recovery_steps(self.recoveries)
        for c in self.customers:
            out.append((c.created, c.index, "signup"))
            if c.sub.switch_card_at is not None:
                out.append((c.sub.switch_card_at, c.index, "switch_card"))
            if c.sub.cancel_at is not None:
                out.append((c.sub.cancel_at, c.index, "cancel"))
            if c.sub.cancel_at_period_end_at is not None:
                out.append((c.sub.cancel_at_period_end_at, c.index, "cancel_at_period_end"))
        return sorted(out)


class _Uniq:
    """Keeps emails, phones and cards unique across people, so only planted duplicates share a signal."""

    def __init__(self) -> None:
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        self.cards: set[str] = set(DECLINE_CARDS.values()) | {GOOD_TEST_CARD}
        self.app_ids: set[str] = set()

    @staticmethod
    def mailbox(email: str) -> str:
        local, _, domain = email.casefold().rpartition("@")
        local = local.split("+", 1)[0]
        if domain in ("gmail.com", "googlemail.com"):
            local, domain = local.replace(".", ""), "gmail.com"
        return f"{local}@{domain}"


class Planner:
    def __init__(self, seed: int, n: int, start: int, end: int) -> None:
        self.rng = random.Random(seed)
        self.seed, self.n, self.start, self.end = seed, n, start, end
        self.horizon = end - start
        self.uniq = _Uniq()
        countries = list(COUNTRIES)
        self.countries, self.weights = countries, [COUNTRIES[c]["w"] for c in countries]

    # people

    def _name(self, culture: str) -> tuple[str, str, str]:
        """(display name, romanised first, romanised last)."""
        c = CULTURES[culture]
        first, last = self.rng.choice(c["first"]), self.rng.choice(c["last"])
        f_text, f_rom = first if isinstance(first, tuple) else (first, _fold(first))
        if f_text in c.get("female", ()):  # Slavic and Greek family names agree with the person
            if c.get("script") == "cyrillic":
                last = (last[0] + "а", last[1] + "a")
            else:
                last = c.get("fem_last", {}).get(last if isinstance(last, str) else last[0], last)
        l_text, l_rom = last if isinstance(last, tuple) else (last, _fold(last))
        if c.get("family_first"):
            name = f"{l_text}{'' if c.get('no_space') else ' '}{f_text}"
        else:
            name = f"{f_text} {l_text}"
        return name, f_rom, l_rom

    def _email(self, first: str, last: str, domain: str) -> str:
        rng = self.rng
        pattern = rng.choice(["{f}.{l}", "{f}{l}", "{f0}{l}", "{f}_{l}", "{l}.{f}", "{f}.{l}{n}", "{f}{n}"])
        for attempt in range(100):
            local = pattern.format(f=first, l=last, f0=first[:1], n=rng.randrange(1, 99))
            if attempt:
                local += str(rng.randrange(10, 9999))
            email = f"{local}@{domain}"
            box = _Uniq.mailbox(email)
            if box not in self.uniq.emails:
                self.uniq.emails.add(box)
                return email
        raise RuntimeError("could not find a unique email")

    def _phone(self, country: str) -> phonenumbers.PhoneNumber:
        cc, leads, digits = COUNTRIES[country]["phone"]
        while True:
            lead = self.rng.choice(leads)
            national = lead + "".join(str(self.rng.randrange(10)) for _ in range(digits - len(lead)))
            num = phonenumbers.parse(f"+{cc}{national}")
            e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(num) and e164 not in self.uniq.phones:
                self.uniq.phones.add(e164)
                return num

    def _written(self, num: phonenumbers.PhoneNumber, avoid: str | None = None) -> str:
        """The number as somebody typed it; NANP numbers also in national forms."""
        fmt = phonenumbers.PhoneNumberFormat
        intl = phonenumbers.format_number(num, fmt.INTERNATIONAL)
        forms = [phonenumbers.format_number(num, fmt.E164), intl, intl.replace(" ", "-"),
                 intl.split(" ", 1)[0] + " " + intl.split(" ", 1)[1].replace(" ", "").replace("-", "")]
        if num.country_code == 1:
            nat = phonenumbers.format_number(num, fmt.NATIONAL)
            digits = str(num.national_number)
            forms += [nat, f"{digits[:3]}.{digits[3:6]}.{digits[6:]}", f"1-{digits[:3]}-{digits[3:6]}-{digits[6:]}"]
        forms = [f for f in dict.fromkeys(forms) if f != avoid]
        return self.rng.choice(forms)

    def _card(self) -> str:
        rng = self.rng
        while True:
            kind = rng.random()
            if kind < 0.6:
                number = _luhn_complete("4", 16, rng)
            elif kind < 0.9:
                number = _luhn_complete(rng.choice(["51", "52", "53", "54", "55"]), 16, rng)
            else:
                number = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
            if number not in self.uniq.cards:
                self.uniq.cards.add(number)
                return number

    def _address(self, country: str) -> dict[str, str]:
        rng, meta = self.rng, COUNTRIES[country]
        city, state, postal = rng.choice(meta["cities"])
        address = {"line1": f"{rng.randrange(1, 2500)} {rng.choice(meta['streets'])}", "city": city,
                   "postal_code": postal, "country": country}
        if country in ("JP", "CN", "KR"):
            address["line1"] = f"{rng.choice(meta['streets'])} {rng.randrange(1, 30)}-{rng.randrange(1, 20)}"
        if state:
            address["state"] = state
        return address

    def _app_user_id(self) -> str:
        """The id the company's own system knows the customer by (random, so it says nothing about order)."""
        while True:
            uid = f"usr_{self.rng.randrange(16**7, 16**8):08x}"
            if uid not in self.uniq.app_ids:
                self.uniq.app_ids.add(uid)
                return uid

    def person(self) -> tuple[Person, str, str]:
        """A new, unique person; also returns the romanised first/last names for email variants."""
        rng = self.rng
        country = rng.choices(self.countries, self.weights)[0]
        meta = COUNTRIES[country]
        name, first, last = self._name(meta["culture"])
        business = rng.random() < 0.25
        if business:
            domain = f"{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_SUFFIX)}.{meta['tld']}"
        else:
            domain = rng.choice(meta["mail"])
        email = self._email(first, last, domain)
        phone = self._written(self._phone(country)) if rng.random() < 0.8 else None
        address = self._address(country)
        locales = [meta["locale"]]
        if meta["locale"] != "en-US" and rng.random() < 0.3:
            locales.append("en")
        metadata = {"signup_source": rng.choice(SIGNUP_SOURCES)}
        if rng.random() < 0.75:
            metadata["app_user_id"] = self._app_user_id()
        balance = -rng.choice([500, 1000, 2500, 5000]) if rng.random() < 0.04 else 0
        tax_id = None
        if business and meta["cur"] == "eur" and rng.random() < 0.5:
            tax_id = ("eu_vat", f"{country if country != 'GR' else 'EL'}{rng.randrange(10**8, 10**9)}")
        p = Person(name=name, email=email, phone=phone, country=country, address=address, locales=locales,
                   currency=meta["cur"], card=self._card(), metadata=metadata, balance=balance, tax_id=tax_id)
        return p, first, last

    def duplicate(self, orig: Person, first: str, last: str, signal: str) -> Person:
        """The same person as `orig`, signed up again; linked to it by `signal` and by nothing stronger."""
        rng = self.rng
        dup = Person(name=orig.name, email=orig.email, phone=None, country=orig.country, address=dict(orig.address),
                     locales=list(orig.locales), currency=orig.currency, card=self._card(),
                     metadata={"signup_source": rng.choice(SIGNUP_SOURCES)})
        if rng.random() < 0.3:
            dup.metadata["app_user_id"] = self._app_user_id()
        if rng.random() < 0.25:  # moved house in between
            dup.address = self._address(orig.country)
        if rng.random() < 0.35:  # typed the name differently the second time
            folded = unicodedata.normalize("NFKD", orig.name)
            variants = ["".join(c for c in folded if not unicodedata.combining(c)), orig.name.upper(),
                        orig.name.casefold().title()]
            if CULTURES[COUNTRIES[orig.country]["culture"]].get("script"):
                variants.append(f"{first.title()} {last.title()}")  # romanised
            dup.name = rng.choice([v for v in variants if v] or [orig.name])
        local, _, domain = orig.email.rpartition("@")
        if signal == "email_case":
            variants = [orig.email.upper(), local.title() + "@" + domain, local + "@" + domain.upper(),
                        local.capitalize() + "@" + domain.capitalize()]
            dup.email = rng.choice([v for v in variants if v != orig.email] or [orig.email.upper()])
        elif signal == "email_plus":
            dup.email = f"{local.split('+', 1)[0]}+{rng.choice(PLUS_TAGS)}@{domain}"
        elif signal == "gmail_dots":  # orig is on gmail.com (the planner chose it so)
            plain = local.replace(".", "")
            dotted = ".".join(plain[i:i + rng.randrange(1, 4)] for i in range(0, len(plain), 3)).strip(".")
            dotted = plain[:1] + "." + plain[1:] if dotted == local or dotted == plain else dotted
            dup.email = f"{dotted if rng.random() < 0.6 else plain}@{rng.choice(['gmail.com', 'googlemail.com'])}"
            if _Uniq.mailbox(dup.email) != _Uniq.mailbox(orig.email) or dup.email == orig.email:
                dup.email = f"{plain[:1]}.{plain[1:]}@googlemail.com"
        else:  # phone or card: a different mailbox
            dup.email = self._email(first, last, rng.choice(COUNTRIES[orig.country]["mail"]))
            if signal == "phone":
                num = phonenumbers.parse(orig.phone or "", "US")
                dup.phone = self._written(num, avoid=orig.phone)
            else:
                dup.card = orig.card
        if signal != "card" and signal != "phone" and orig.phone and rng.random() < 0.3:
            dup.phone = self._written(phonenumbers.parse(orig.phone, "US"), avoid=orig.phone)
        return dup

    # time

    def _at(self, lo: float, hi: float) -> int:
        """A random offset in [lo, hi] seconds, clamped to the year and put on the clock's grid."""
        lo, hi = max(0.0, lo), min(float(self.horizon), hi)
        return grid(int(self.rng.uniform(lo, max(lo, hi))), self.horizon)

    def _renewal_failure(self, days_ago_lo: float, days_ago_hi: float) -> tuple[int, int]:
        """(signup offset, card switch offset) so that a monthly renewal falls days_ago before the end."""
        rng = self.rng
        for _ in range(50):
            fail_at = self.end - int(rng.uniform(days_ago_lo, days_ago_hi) * DAY)
            months_back = [k for k in range(1, 12) if add_months(fail_at, -k) >= self.start + DAY]
            if months_back:
                k = rng.choice(months_back)
                created = grid(add_months(fail_at, -k) - self.start, self.horizon)
                prev_renewal = add_months(self.start + created, k - 1)
                return created, grid(prev_renewal + 2 * DAY - self.start, self.horizon)
        raise RuntimeError("no room in the year for this failure")

    def _current_period_start(self, created: int, interval: str) -> int:
        """Offset of the last renewal before the end (the sandbox renews on calendar months from signup)."""
        k, start = 0, created
        while True:
            nxt = add_months(self.start + created, (k + 1) * (12 if interval == "year" else 1)) - self.start
            if nxt > self.horizon:
                return start
            k, start = k + 1, nxt

    def subscription(self, story: str, person: Person, decline: str | None) -> tuple[int, SubPlan]:
        rng, h = self.rng, self.horizon
        key = rng.choices(["starter", "team", "business"], [0.5, 0.35, 0.15])[0]
        interval = "year" if rng.random() < 0.25 else "month"
        if story in ("past_due", "unpaid", "canceled_payment_failed"):
            interval = "month"
        qty = rng.choice([2, 3, 3, 5, 8, 12, 25]) if key == "team" else 1
        items = [(key, qty)]
        if key != "starter" and rng.random() < 0.15:
            items.append(("priority_support", 1))
        status = "canceled" if story == "canceled_payment_failed" else story
        sub = SubPlan(story=story, status=status, items=items, interval=interval, decline=decline)
        if status == "active":
            created = self._at(0, h - 2 * DAY)
            if rng.random() < 0.08:  # asked to stop at the end of the period they are in
                period_start = self._current_period_start(created, interval)
                if period_start < h - 4 * HOUR:
                    sub.cancel_at_period_end_at = self._at(period_start + 2 * HOUR, h - HOUR)
        elif status == "trialing":
            sub.trial_days = rng.choice([7, 14, 14, 30])
            created = self._at(h - (sub.trial_days - 0.5) * DAY, h - 2 * HOUR)
        elif status == "paused":
            sub.trial_days = 14
            created = self._at(h - 120 * DAY, h - 16 * DAY)
        elif status == "past_due":
            created, sub.switch_card_at = self._renewal_failure(1.5, PAST_DUE_MAX_DAYS)
        elif status == "unpaid":  # retries ran out after the policy change
            created, sub.switch_card_at = self._renewal_failure(17, HISTORY_DAYS - POLICY_CHANGE_DAY - 40)
        elif story == "canceled_payment_failed":  # retries ran out before it
            created, sub.switch_card_at = self._renewal_failure(HISTORY_DAYS - POLICY_CHANGE_DAY + 20, 330)
        elif status == "canceled":
            created = self._at(0, h - 40 * DAY)
            sub.cancel_at = self._at(created + 3 * DAY, h - DAY)
        elif status == "incomplete":
            created = self._at(h - 18 * HOUR, h - 2 * HOUR)
        elif status == "incomplete_expired":
            created = self._at(0, h - 3 * DAY)
        else:
            raise ValueError(status)
        return created, sub

    # the whole account

    def build(self) -> Plan:
        rng, n = self.rng, self.n
        n_dup = max(round(n * DUPLICATE_SHARE), min(5, n // 8))
        n_primary = n - n_dup
        people: list[tuple[Person, str, str]] = [self.person() for _ in range(n_primary)]

        # stories: quotas with at least one of each, shuffled
        counts = {s: max(1, int(share * n)) for s, share in STORY_SHARE.items()}
        counts["active"] += n - sum(counts.values())
        pool = [s for s in STORY_SHARE for _ in range(counts[s])]
        rng.shuffle(pool)

        # planted clusters: each signal at least once, then at random; ~10% of clusters have a third record
        clusters: list[tuple[str, list[int]]] = []
        dup_sources: list[tuple[int, str]] = []  # (original index, signal) for each duplicate record
        candidates = list(range(n_primary))
        rng.shuffle(candidates)
        remaining = n_dup
        while remaining > 0:
            signal = SIGNALS[len(clusters)] if len(clusters) < len(SIGNALS) else rng.choice(SIGNALS)
            orig = candidates.pop()
            size = 2 if remaining < 2 or len(clusters) < len(SIGNALS) or rng.random() > 0.1 else 3
            clusters.append((signal, [orig]))
            for _ in range(size - 1):
                dup_sources.append((orig, signal))
            remaining -= size - 1
        for signal, members in clusters:  # make the original fit its signal
            p, first, last = people[members[0]]
            if signal == "gmail_dots" and not p.email.endswith("@gmail.com"):
                self.uniq.emails.discard(_Uniq.mailbox(p.email))
                p.email = self._email(first, last, "gmail.com")
            if signal == "phone" and not p.phone:
                p.phone = self._written(self._phone(p.country))

        records: list[Person] = [p for p, _, _ in people]
        cluster_of: dict[int, int] = {c[1][0]: i for i, c in enumerate(clusters)}
        for orig, signal in dup_sources:
            index = len(records)
            _, first, last = people[orig]
            records.append(self.duplicate(records[orig], first, last, signal))
            clusters[cluster_of[orig]][1].append(index)

        # a shared card must stay on file: keep those records out of statuses that start with a failing card
        card_members = {i for signal, members in clusters if signal == "card" for i in members}
        no_card_start = {"incomplete", "incomplete_expired", "paused"}
        for i in sorted(card_members):
            if pool[i] in no_card_start:
                j = next(j for j in range(n) if j not in card_members and pool[j] not in no_card_start)
                pool[i], pool[j] = pool[j], pool[i]

        # decline codes: spread evenly over the failing subscriptions
        declines = list(DECLINE_CARDS)
        rng.shuffle(declines)
        failing = sorted((i for i in range(n) if pool[i] in FAILING_STORIES),
                         key=lambda i: (FAILING_STORIES.index(pool[i]), i))
        decline_of = {i: declines[k % len(declines)] for k, i in enumerate(failing)}

        customers: list[CustomerPlan] = []
        for i, person in enumerate(records):
            created, sub = self.subscription(pool[i], person, decline_of.get(i))
            status = sub.status
            if pool[i] in FAILING_STORIES:
                person.balance = 0  # a credit would pay the renewal that is meant to fail
            if status in ("incomplete", "incomplete_expired"):
                person.card = DECLINE_CARDS[sub.decline or "generic_decline"]
            elif status == "paused":
                person.card = None
            customers.append(CustomerPlan(index=i, person=person, created=created, sub=sub))
        for k, (_, members) in enumerate(clusters):
            for i in members:
                customers[i].cluster = k
        return Plan(seed=self.seed, start=self.start, end=self.end, customers=customers, clusters=clusters,
                    recoveries=self.recoveries(customers))

    # recovered failures

    def recoveries(self, customers: list[CustomerPlan]) -> list[RecoveryPlan]:
        """Some active monthly subscriptions fail one renewal and recover: the card is replaced within a day or
        two, then the open invoice is paid at once or by the next retry. Drawn from their own random stream, so
        the rest of the plan is what it was before recoveries existed."""
        rng = random.Random(f"recoveries-{self.seed}")
        eligible = [c for c in customers if c.sub.story == "active" and c.sub.interval == "month"
                    and c.sub.cancel_at_period_end_at is None and c.cluster is None and c.person.card
                    and not c.person.balance and self._renewal_to_fail(c, random.Random(0)) is not None]
        chosen = rng.sample(eligible, min(len(eligible), max(1, round(RECOVERY_SHARE * len(eligible)))))
        out = []
        for c in sorted(chosen, key=lambda c: c.index):
            renewal = self._renewal_to_fail(c, rng)
            assert renewal is not None
            card = self._unique_card(rng)
            out.append(RecoveryPlan(index=c.index, decline=rng.choice(list(DECLINE_CARDS)),
                                    fail_card_at=grid(renewal - 2 * DAY, self.horizon),
                                    fix_card_at=grid(renewal + int(rng.uniform(0.2, 1.0) * DAY), self.horizon),
                                    card=card, pay_now=rng.random() < RECOVERY_PAY_NOW))
        return out

    def _renewal_to_fail(self, c: CustomerPlan, rng: random.Random) -> int | None:
        """Offset of a monthly renewal at least 10 days before the end (room for the retry), or None."""
        renewals = [r for k in range(1, 13)
                    if (r := add_months(self.start + c.created, k) - self.start) <= self.horizon - 10 * DAY]
        return rng.choice(renewals) if renewals else None

    def _unique_card(self, rng: random.Random) -> str:
        while True:
            number = _luhn_complete("4", 16, rng)
            if number not in self.uniq.cards:
                self.uniq.cards.add(number)
                return number


def recovery_steps(recoveries: list[RecoveryPlan]) -> list[tuple[int, int, str]]:
    """The (offset, customer index, action) steps of the planned recoveries."""
    return [step for r in recoveries
            for step in ((r.fail_card_at, r.index, "recovery_fail_card"), (r.fix_card_at, r.index, "recovery_fix"))]


def plan(n: int, seed: int, *, end: int | None = None) -> Plan:
    """The whole demo account for `n` customer records, decided up front from `seed` alone."""
    if n < 10:
        raise ValueError("the demo needs at least 10 customers (one of every subscription status and a duplicate)")
    end = int(end if end is not None else time.time())
    return Planner(seed, n, end - HISTORY_DAYS * DAY, end).build()


# --- talking to the sandbox ----------------------------------------------------------------------------------


class SeedError(RuntimeError):
    """The seed cannot go on; the message says what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Connections:
    """One kept-alive http.client connection per thread to the sandbox.

    Half the client CPU of `requests` per call (no proxy lookups, no cookie jar, no adapters), and the seed's
    CPU is mostly per-request overhead: for a local sandbox this is all the HTTP it needs.
    """

    def __init__(self, api_base: str) -> None:
        url = urllib.parse.urlsplit(api_base)
        self.cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.host, self.port = url.hostname or "127.0.0.1", url.port
        self.local = threading.local()

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]
             ) -> tuple[int, bytes, dict[str, str]]:
        for attempt in (1, 2):  # a kept-alive connection the server has closed fails once, then reconnects
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.cls(self.host, self.port, timeout=600)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class _SandboxHTTPClient(stripe.HTTPClient):
    """The SDK's HTTP client interface over `_Connections` (StripeClient(http_client=...))."""

    name = "http.client"

    def __init__(self, connections: _Connections) -> None:
        super().__init__()
        self.connections = connections

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *,
                _usage: Any = None) -> tuple[bytes, int, dict[str, str]]:
        parts = urllib.parse.urlsplit(url)
        path = parts.path + ("?" + parts.query if parts.query else "")
        body = post_data.encode() if isinstance(post_data, str) else post_data
        try:
            status, content, resp_headers = self.connections.send(method.upper(), path, body, dict(headers or {}))
        except (OSError, http.client.HTTPException) as exc:
            raise stripe.APIConnectionError(f"Could not reach the sandbox at {url}: {exc}") from exc
        return content, status, resp_headers

    def close(self) -> None:
        pass


class Control:
    """The sandbox's own endpoints under /_sandbox/ (not Stripe's API)."""

    def __init__(self, api_base: str, connections: _Connections | None = None) -> None:
        self.base = api_base.rstrip("/")
        self.connections = connections or _Connections(api_base)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        try:
            status, raw, _ = self.connections.send(method, "/_sandbox/" + path, data,
                                                   {"Content-Type": "application/json"})
        except (OSError, http.client.HTTPException) as exc:
            raise SeedError(f"cannot reach the sandbox at {self.base} ({exc}); start it with "
                            "`python -m sandbox --port 12111` and try again") from None
        if status >= 400:
            text = raw.decode(errors="replace")[:300]
            raise SeedError(f"sandbox {method} /_sandbox/{path} answered {status}: {text}", status)
        return json.loads(raw) if raw else None

    def now(self) -> int:
        return int(self.call("GET", "clock")["now"])

    def set_clock(self, now: int) -> None:
        self.call("POST", "clock/set", {"now": now})

    def advance(self, seconds: int) -> int:
        return int(self.call("POST", "clock/advance", {"seconds": seconds})["now"])


@dataclass
class SeedResult:
    plan: Plan
    customer_ids: dict[int, str]
    seconds: float
    requests: int
    statuses: Counter[str]

    def truth(self) -> dict[str, Any]:
        """The planted duplicate clusters as customer ids: the answer key for bench/duplicates.py."""
        return {
            "seed": self.plan.seed,
            "customers": len(self.plan.customers),
            "clusters": [[self.customer_ids[i] for i in members] for _, members in self.plan.clusters],
            "signals": [signal for signal, _ in self.plan.clusters],
        }


class Seeder:
    """Carries out a Plan against a sandbox, day by day, with a small thread pool."""

    def __init__(self, api_base: str, *, api_key: str = DEFAULT_KEY, workers: int = 8, retries: int = 2,
                 log: Callable[[str], None] = print) -> None:
        connections = _Connections(api_base)
        self.client = stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=retries,
                                          http_client=_SandboxHTTPClient(connections))
        self._lock = threading.Lock()
        self.control = Control(api_base, connections)
        self.workers = workers
        self.log = log
        self.prices: dict[str, str] = {}  # lookup key → price id
        self.products: dict[str, str] = {}
        self.state: dict[int, dict[str, str]] = {}
        self.requests = 0

    # catalogue

    def catalogue(self) -> None:
        api = self.client.v1
        for key, name, description, monthly, _per_seat in PRODUCTS:
            product = api.products.create({"name": name, "description": description, "metadata": {"plan": key}})
            self.products[key] = product.id
            self.requests += 1
            for cur, amount in zip(CURRENCIES, monthly, strict=True):
                for interval, mult in (("month", 1), ("year", YEARLY_MONTHS)):
                    lookup = f"{key}_{interval}ly_{cur}"
                    price = api.prices.create({"product": product.id, "currency": cur, "unit_amount": amount * mult,
                                               "recurring": {"interval": interval}, "lookup_key": lookup,
                                               "nickname": f"{name} {interval}ly ({cur.upper()})"})
                    self.prices[lookup] = price.id
                    self.requests += 1

    # one customer's actions

    def _write(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A write whose answer we only need ids from: the SDK's raw_request skips building typed objects,
        which is most of the client's CPU time for big objects such as subscriptions."""
        resp = self.client.raw_request(method, path, **(params or {}))
        with self._lock:
            self.requests += 1
        return resp.data

    def _card(self, number: str, exp_year: int) -> str:
        card = {"number": number, "exp_month": 1 + int(number[-3:]) % 12, "exp_year": exp_year, "cvc": "314"}
        return self._write("post", "/v1/payment_methods", {"type": "card", "card": card})["id"]

    def signup(self, c: CustomerPlan, now: int) -> None:
        p, s = c.person, c.sub
        exp_year = datetime.fromtimestamp(now, UTC).year + 1 + int(p.card[-2:]) % 4 if p.card else 0
        params: dict[str, Any] = {"name": p.name, "email": p.email, "address": p.address,
                                  "preferred_locales": p.locales, "metadata": p.metadata}
        if p.phone:
            params["phone"] = p.phone
        if p.balance:
            params["balance"] = p.balance
        if p.card:
            pm = self._card(p.card, exp_year)
            params["payment_method"] = pm
            params["invoice_settings"] = {"default_payment_method": pm}
        cid = self._write("post", "/v1/customers", params)["id"]
        self.state[c.index] = {"customer": cid}
        if p.tax_id:
            self._write("post", f"/v1/customers/{cid}/tax_ids", {"type": p.tax_id[0], "value": p.tax_id[1]})
        interval = s.interval
        sub_params: dict[str, Any] = {
            "customer": cid,
            "items": [{"price": self.prices[f"{k}_{interval}ly_{p.currency}"], "quantity": q} for k, q in s.items],
            "metadata": {"plan": s.items[0][0]},
        }
        if s.trial_days:
            sub_params["trial_period_days"] = s.trial_days
            if s.status == "paused":
                sub_params["trial_settings"] = {"end_behavior": {"missing_payment_method": "pause"}}
        self.state[c.index]["subscription"] = self._write("post", "/v1/subscriptions", sub_params)["id"]

    def switch_card(self, c: CustomerPlan, now: int) -> None:
        """The customer's card on file is replaced by one the bank will decline at the next renewal."""
        cid = self.state[c.index]["customer"]
        pm = self._card(DECLINE_CARDS[c.sub.decline or "generic_decline"], datetime.fromtimestamp(now, UTC).year + 2)
        self._write("post", f"/v1/payment_methods/{pm}/attach", {"customer": cid})
        self._write("post", f"/v1/customers/{cid}", {"invoice_settings": {"default_payment_method": pm}})

    def recovery_fail_card(self, c: CustomerPlan, now: int, r: RecoveryPlan) -> None:
        """A card the bank declines becomes the default, so the coming renewal fails."""
        cid = self.state[c.index]["customer"]
        pm = self._card(DECLINE_CARDS[r.decline], datetime.fromtimestamp(now, UTC).year + 2)
        self._write("post", f"/v1/payment_methods/{pm}/attach", {"customer": cid})
        self._write("post", f"/v1/customers/{cid}", {"invoice_settings": {"default_payment_method": pm}})

    def recovery_fix(self, c: CustomerPlan, now: int, r: RecoveryPlan) -> None:
        """The customer puts a good card on file; with `pay_now` the failed invoice is paid at once."""
        cid = self.state[c.index]["customer"]
        pm = self._card(r.card, datetime.fromtimestamp(now, UTC).year + 3)
        self._write("post", f"/v1/payment_methods/{pm}/attach", {"customer": cid})
        self._write("post", f"/v1/customers/{cid}", {"invoice_settings": {"default_payment_method": pm}})
        if r.pay_now:
            for inv in self._write("get", "/v1/invoices", {"customer": cid, "status": "open"})["data"]:
                self._write("post", f"/v1/invoices/{inv['id']}/pay")

    def cancel(self, c: CustomerPlan, now: int) -> None:
        self._write("delete", f"/v1/subscriptions/{self.state[c.index]['subscription']}")

    def cancel_at_period_end(self, c: CustomerPlan, now: int) -> None:
        self._write("post", f"/v1/subscriptions/{self.state[c.index]['subscription']}", {"cancel_at_period_end": True})

    # the year

    def run(self, seed_plan: Plan, *, reset: bool = False) -> SeedResult:
        t0 = time.monotonic()
        if reset:
            self.control.call("POST", "reset", {})
        try:
            self.control.set_clock(seed_plan.start)
        except SeedError as exc:
            if exc.status != 400:
                raise
            raise SeedError(f"{exc}\nThe seed needs an empty sandbox: reset it (--reset, or POST /_sandbox/reset) "
                            "or start it without an old --state file.") from None
        self.control.call("POST", "settings", OLD_POLICY)
        self.catalogue()
        horizon = seed_plan.end - seed_plan.start
        actions: dict[str, Callable[[CustomerPlan, int], None]] = {
            "signup": self.signup, "switch_card": self.switch_card, "cancel": self.cancel,
            "cancel_at_period_end": self.cancel_at_period_end}
        recoveries = {r.index: r for r in seed_plan.recoveries}
        actions["recovery_fail_card"] = lambda c, at: self.recovery_fail_card(c, at, recoveries[c.index])
        actions["recovery_fix"] = lambda c, at: self.recovery_fix(c, at, recoveries[c.index])
        by_time: dict[int, dict[int, list[str]]] = {}
        for offset, index, action in seed_plan.steps():
            by_time.setdefault(grid(offset, horizon), {}).setdefault(index, []).append(action)
        policy_at = grid(POLICY_CHANGE_DAY * DAY, horizon)
        by_time.setdefault(policy_at, {})
        now, signed_up, total = seed_plan.start, 0, len(seed_plan.customers)
        next_report = 0.1
        customers = {c.index: c for c in seed_plan.customers}

        def work(index: int, names: list[str], at: int) -> None:
            for name in names:
                try:
                    actions[name](customers[index], at)
                except stripe.StripeError as exc:
                    raise SeedError(f"{name} for customer #{index} failed: {exc.user_message or exc}") from exc

        with ThreadPoolExecutor(self.workers) as pool:
            for offset in sorted(by_time):
                target = seed_plan.start + offset
                if target > now:
                    now = self.control.advance(target - now)
                if offset == policy_at:
                    self.control.call("POST", "settings", NEW_POLICY)
                batch = by_time[offset]
                for f in [pool.submit(work, i, names, now) for i, names in batch.items()]:
                    f.result()
                signed_up += sum(names.count("signup") for names in batch.values())
                if signed_up / total >= next_report:
                    day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
                    self.log(f"[seed] {day}  customers {signed_up}/{total}  requests {self.requests}  "
                             f"{time.monotonic() - t0:.1f}s")
                    next_report += 0.1
        if seed_plan.end > now:
            now = self.control.advance(seed_plan.end - now)
        statuses = self.census()
        ids = {i: s["customer"] for i, s in self.state.items()}
        return SeedResult(plan=seed_plan, customer_ids=ids, seconds=time.monotonic() - t0, requests=self.requests,
                          statuses=statuses)

    def census(self) -> Counter[str]:
        """What the sandbox now holds: subscriptions by status (raw pages of 100, no typed objects needed)."""
        statuses: Counter[str] = Counter()
        params: dict[str, Any] = {"status": "all", "limit": 100}
        while True:
            page = self.client.raw_request("get", "/v1/subscriptions", **params).data
            self.requests += 1
            statuses.update(sub["status"] for sub in page["data"])
            if not page["has_more"]:
                return statuses
            params["starting_after"] = page["data"][-1]["id"]

    def finish(self, *, webhook_url: str | None) -> dict[str, str]:
        """A default portal configuration (so portal links work) and the dashboard's webhook endpoint."""
        api = self.client.v1
        prods = [{"product": self.products[k], "prices": [v for lk, v in self.prices.items() if lk.startswith(k + "_")
                                                          and "_month" in lk]}
                 for k in ("starter", "team", "business")]
        config = api.billing_portal.configurations.create({
            "business_profile": {"headline": "Manage your subscription",
                                 "privacy_policy_url": "https://example.com/privacy",
                                 "terms_of_service_url": "https://example.com/terms"},
            "features": {
                "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "phone", "name"]},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {"enabled": True, "default_allowed_updates": ["price", "quantity"],
                                        "products": prods},
            },
        })
        out = {"portal_configuration": config.id}
        if webhook_url:
            endpoint = api.webhook_endpoints.create({"url": webhook_url, "enabled_events": ["*"],
                                                     "description": "Billing Console dashboard"})
            out["webhook_endpoint"] = endpoint.id
        return out


def plant_messy(seeder: Seeder, seed_plan: Plan) -> None:
    """The messy cases (sandbox/messy.py), planted at the end of the seeded year."""
    from sandbox import messy

    planted = messy.plant(seeder._write, exp_year=datetime.fromtimestamp(seed_plan.end, UTC).year + 2)
    print(f"[seed] messy: {len(planted.customers)} customers ({', '.join(planted.customers)}), "
          f"{planted.requests} requests")


# --- command line --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox.seed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--api-base", required=True, help="the sandbox's address, e.g. http://127.0.0.1:12111")
    ap.add_argument("--customers", type=int, default=2000, help="customer records to create (default 2000)")
    ap.add_argument("--seed", type=int, default=7, help="random seed: same seed, same account (default 7)")
    ap.add_argument("--truth-file", help="write the planted duplicate clusters (customer ids) to this JSON file")
    ap.add_argument("--api-key", default=DEFAULT_KEY, help="any sk_test_ key the sandbox accepts")
    ap.add_argument("--workers", type=int, default=8, help="parallel requests (default 8)")
    ap.add_argument("--reset", action="store_true", help="empty the sandbox first")
    ap.add_argument("--messy", action="store_true",
                    help="also plant the messy cases of sandbox/messy.py (Markdown, formulas, odd currencies, …)")
    ap.add_argument("--webhook-url", default=DASHBOARD_WEBHOOK_URL,
                    help=f"webhook endpoint to register (default {DASHBOARD_WEBHOOK_URL}; 'none' for no endpoint)")
    args = ap.parse_args(argv)
    if not 1 <= args.workers <= 64:
        ap.error("--workers must be between 1 and 64")
    try:
        p = plan(args.customers, args.seed)
    except ValueError as exc:
        ap.error(str(exc))
    seeder = Seeder(args.api_base, api_key=args.api_key, workers=args.workers)
    print(f"[seed] {args.customers} customers, seed {args.seed}, "
          f"{len(p.clusters)} planted duplicate clusters, clock from "
          f"{datetime.fromtimestamp(p.start, UTC):%Y-%m-%d} to {datetime.fromtimestamp(p.end, UTC):%Y-%m-%d}")
    try:
        result = seeder.run(p, reset=args.reset)
        if args.messy:
            plant_messy(seeder, p)
        extra = seeder.finish(webhook_url=None if args.webhook_url in ("", "none") else args.webhook_url)
    except SeedError as exc:
        print(f"[seed] failed: {exc}", file=sys.stderr)
        return 1
    except stripe.StripeError as exc:
        print(f"[seed] failed: the sandbox refused a request: {exc.user_message or exc}", file=sys.stderr)
        return 1
    if args.truth_file:
        with open(args.truth_file, "w", encoding="utf-8") as fh:
            json.dump(result.truth(), fh, indent=1)
    print(f"[seed] subscriptions by status: {dict(sorted(result.statuses.items()))}")
    planted = Counter(c.sub.decline for c in p.customers if c.sub.decline)
    print(f"[seed] cards that fail renewals, by decline code: {dict(sorted(planted.items()))}")
    print(f"[seed] done: {len(result.customer_ids)} customers, {sum(result.statuses.values())} subscriptions, "
          f"{len(p.clusters)} duplicate clusters, {result.requests} requests, {result.seconds:.1f}s; "
          + ", ".join(f"{k} {v}" for k, v in extra.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
