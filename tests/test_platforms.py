"""Platform-export connectors: each fixture is a small file in the platform's real layout."""

from __future__ import annotations

import hashlib
import math
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from connectors.platforms import (
    ExportFormatError,
    MissingOptionError,
    PlatformMapping,
    available_platforms,
    email_sha256,
    load_export,
    load_mapping,
)
from roi.data.schema import TABLES

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"


def sha(email: str) -> str:
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN -> None, for exact comparisons."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- registry


def test_available_platforms_lists_every_packaged_mapping():
    assert available_platforms() == [
        "discord_members", "discourse_users", "google_ads_campaigns", "hubspot_contacts",
        "meta_ads", "shopify_orders", "slack_member_analytics", "slack_members",
        "stripe_subscriptions"]


@pytest.mark.parametrize("platform", available_platforms())
def test_every_mapping_documents_its_source_and_fits_the_schema(platform):
    mapping = load_mapping(platform)
    assert mapping.table in TABLES
    assert len(mapping.source) > 200, "the source note says where the layout comes from"
    assert "Columns used" in mapping.source
    assert set(TABLES[mapping.table].required) <= set(mapping.columns)


def test_unknown_platform_and_unknown_option_are_refused():
    with pytest.raises(ValueError, match="unknown platform 'myspace'"):
        load_export(FIXTURES / "hubspot_contacts.csv", platform="myspace")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['comunity'\]"):
        load_export(FIXTURES / "discourse_users.csv", platform="discourse_users",
                    options={"comunity": "forum"})


# --------------------------------------------------------------------------- Shopify


def test_shopify_orders_folds_line_items_and_counts_every_dropped_row():
    tbl = load_export(FIXTURES / "shopify_orders_export.csv", platform="shopify_orders")
    assert tbl.table == "orders"
    assert list(tbl.frame.columns) == ["customer_id", "order_date", "revenue", "order_id",
                                       "channel", "currency"]
    assert records(tbl.frame) == [
        {"customer_id": sha("alice@example.com"), "order_date": "2024-03-05", "revenue": 54.5,
         "order_id": "#1001", "channel": "web", "currency": "USD"},
        {"customer_id": sha("bob@example.com"), "order_date": "2024-03-06", "revenue": 1234.0,
         "order_id": "#1002", "channel": "web", "currency": "USD"},
        # Carol@Example.com: trimmed and lower-cased before hashing; 80.00 minus 10.00 refunded
        {"customer_id": sha("carol@example.com"), "order_date": "2024-03-07", "revenue": 70.0,
         "order_id": "#1003", "channel": "web", "currency": "USD"},
        # "2024-03-31 23:59:59 +1000" keeps its local date
        {"customer_id": sha("dave@example.com"), "order_date": "2024-03-31", "revenue": 99.9,
         "order_id": "#1006", "channel": "web", "currency": "USD"},
    ]
    assert tbl.notes == [
        "Folded 9 line-item rows into 6 orders.",
        "Skipped 1 row(s): voided orders (authorised, never paid).",
        "revenue is net of 'Refunded Amount' for 1 row(s) (total 10.00 subtracted).",
        "Skipped 1 row(s) without customer_id: orders without an e-mail (POS or guest "
        "checkouts cannot be linked to a customer).",
    ]


def test_shopify_customer_key_is_the_normalised_email_hash():
    assert email_sha256("  Carol@Example.com ") == sha("carol@example.com")


def test_missing_column_error_names_platform_file_missing_and_found(tmp_path):
    text = (FIXTURES / "shopify_orders_export.csv").read_text()
    broken = write(tmp_path / "orders_export_1.csv", text.replace(",Total,", ",Grand Total,", 1))
    with pytest.raises(ExportFormatError) as err:
        load_export(broken, platform="shopify_orders")
    message = str(err.value)
    assert message.startswith("shopify_orders: orders_export_1.csv: missing column(s) 'Total'")
    assert "columns found: 'Name', 'Email', 'Financial Status'" in message
    assert "'Grand Total'" in message
    assert isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- Stripe


def test_stripe_subscriptions_become_customers_with_churn_from_ended_subscriptions():
    tbl = load_export(FIXTURES / "stripe_subscriptions.csv", platform="stripe_subscriptions")
    assert tbl.table == "customers"
    assert records(tbl.frame) == [
        # one canceled + one active subscription: still a customer since the first start
        {"customer_id": "cus_PQa001", "first_seen": "2023-05-01", "churned_at": None,
         "email": "ana@example.com"},
        # cancel requested 2024-03-15, ended 2024-03-31 23:30 UTC: churned when it ended
        {"customer_id": "cus_PQb002", "first_seen": "2023-08-15", "churned_at": "2024-03-31",
         "email": "ben@example.com"},
        # cancellation requested but still active (cancel at period end): not churned
        {"customer_id": "cus_PQc003", "first_seen": "2023-11-02", "churned_at": None,
         "email": "chen@example.com"},
        {"customer_id": "cus_PQe005", "first_seen": "2024-03-25", "churned_at": None,
         "email": "eli@example.com"},
        # two ended subscriptions: churned at the later end
        {"customer_id": "cus_PQf006", "first_seen": "2022-12-01", "churned_at": "2024-02-01",
         "email": "fay@example.com"},
    ]
    assert tbl.notes == [
        "Skipped 1 row(s): subscriptions that never started (status incomplete / "
        "incomplete_expired).",
        "churned_at left empty for 1 row(s): cancellation requested but the subscription is "
        "still running (cancel at period end).",
        "Grouped 7 subscriptions into 5 customers.",
    ]


def test_stripe_older_export_with_start_utc_and_no_ended_column(tmp_path):
    path = write(tmp_path / "subscriptions.csv",
                 "id,Customer ID,Status,Created (UTC),Start (UTC),Canceled At (UTC)\n"
                 "sub_1,cus_1,canceled,2023-01-02 10:00,2023-01-01 09:00,2023-06-30 23:59\n"
                 "sub_2,cus_2,active,2023-02-01 10:00,,\n")
    tbl = load_export(path, platform="stripe_subscriptions")
    assert records(tbl.frame) == [
        {"customer_id": "cus_1", "first_seen": "2023-01-01", "churned_at": "2023-06-30"},
        {"customer_id": "cus_2", "first_seen": "2023-02-01", "churned_at": None},
    ]


# --------------------------------------------------------------------------- HubSpot


def test_hubspot_contacts_become_customers_with_raw_emails():
    tbl = load_export(FIXTURES / "hubspot_contacts.csv", platform="hubspot_contacts")
    assert tbl.table == "customers"
    assert list(tbl.frame.columns) == ["customer_id", "first_seen", "email"]
    assert tbl.frame["customer_id"].tolist() == ["51", "52", "53", "54", "55", "56"]
    assert tbl.frame["first_seen"].tolist() == ["2023-05-01", "2023-08-15", "2023-11-02",
                                                "2024-01-05", "2024-03-25", "2022-11-30"]
    # raw (only trimmed): the dataset layer normalises and hashes
    assert tbl.frame["email"].tolist() == ["ana@example.com", "ben@example.com",
                                           "Chen.Wu@Example.com", None, "eli@example.com",
                                           "fay@example.com"]
    assert tbl.notes == []


def test_hubspot_first_seen_can_come_from_became_a_customer_date(tmp_path):
    path = write(tmp_path / "hubspot-crm-exports-all-contacts.csv",
                 "Record ID,Email,Create Date,Became a Customer Date\n"
                 "1,a@example.com,2023-01-01 10:00,2023-02-14 09:00\n"
                 "2,b@example.com,2023-01-05 10:00,\n")
    tbl = load_export(path, platform="hubspot_contacts",
                      options={"columns": {"first_seen": "Became a Customer Date"}})
    assert records(tbl.frame) == [
        {"customer_id": "1", "first_seen": "2023-02-14", "email": "a@example.com"}]
    assert tbl.notes == ["Skipped 1 row(s) without first_seen."]


def test_hubspot_xlsx_with_real_date_cells(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Record ID", "First Name", "Email", "Create Date"])
    sheet.append([51, "Ana", "ana@example.com", datetime(2023, 5, 1, 23, 30)])
    sheet.append([52, "Ben", None, datetime(2023, 8, 15, 0, 5)])
    book.save(tmp_path / "contacts.xlsx")
    tbl = load_export(tmp_path / "contacts.xlsx", platform="hubspot_contacts")
    assert records(tbl.frame) == [
        {"customer_id": "51", "first_seen": "2023-05-01", "email": "ana@example.com"},
        {"customer_id": "52", "first_seen": "2023-08-15", "email": None},
    ]


# --------------------------------------------------------------------------- Google Ads


def test_google_ads_report_skips_title_lines_and_total_rows():
    tbl = load_export(FIXTURES / "google_ads_campaigns.csv", platform="google_ads_campaigns")
    assert tbl.table == "ad_spend"
    assert records(tbl.frame) == [
        {"date": "2024-03-01", "channel": "google_ads", "spend": 172.45,
         "campaign": "Brand - Search", "impressions": 1204.0, "clicks": 41.0},
        {"date": "2024-03-01", "channel": "google_ads", "spend": 1002.3,
         "campaign": "PMax - All products", "impressions": 48900.0, "clicks": 605.0},
        {"date": "2024-03-02", "channel": "google_ads", "spend": 165.1,
         "campaign": "Brand - Search", "impressions": 1180.0, "clicks": 39.0},
        {"date": "2024-03-02", "channel": "google_ads", "spend": 1000.0,
         "campaign": "PMax - All products", "impressions": 51020.0, "clicks": 588.0},
        {"date": "2024-03-03", "channel": "google_ads", "spend": 54.2,
         "campaign": "Brand - Search", "impressions": 410.0, "clicks": 52.0},
        {"date": "2024-03-03", "channel": "google_ads", "spend": 0.0,
         "campaign": "Competitor terms", "impressions": 0.0, "clicks": 0.0},
    ]
    assert tbl.frame["spend"].sum() == pytest.approx(2394.05)  # = the skipped "Total: Account"
    assert tbl.notes == [
        "Skipped 2 line(s) above the header row (report title, date range).",
        "Skipped 3 row(s): Google Ads 'Total: ...' summary rows.",
    ]


def test_google_ads_channel_per_campaign_type_or_renamed():
    by_type = load_export(FIXTURES / "google_ads_campaigns.csv", platform="google_ads_campaigns",
                          options={"columns": {"channel": {"from": "Campaign type",
                                                           "transform": "slug",
                                                           "prefix": "google_ads_"}}})
    assert by_type.frame["channel"].tolist() == [
        "google_ads_search", "google_ads_performance_max", "google_ads_search",
        "google_ads_performance_max", "google_ads_search", "google_ads_search"]
    renamed = load_export(FIXTURES / "google_ads_campaigns.csv",
                          platform="google_ads_campaigns", options={"channel": "adwords"})
    assert set(renamed.frame["channel"]) == {"adwords"}


def test_google_ads_excel_csv_is_utf16_and_tab_separated(tmp_path):
    lines = ["Campaign report", "March 1, 2024 - March 3, 2024",
             "Day\tCampaign status\tCampaign\tImpr.\tClicks\tCost",
             "2024-03-01\tEnabled\tBrand - Search\t1,204\t41\t172.45",
             "Total: Account\t--\t--\t1,204\t41\t172.45"]
    path = tmp_path / "Campaign report.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-16"))
    tbl = load_export(path, platform="google_ads_campaigns")
    assert records(tbl.frame) == [
        {"date": "2024-03-01", "channel": "google_ads", "spend": 172.45,
         "campaign": "Brand - Search", "impressions": 1204.0, "clicks": 41.0}]


def test_google_ads_xlsx_with_title_rows(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Campaign report"])
    sheet.append(["March 1, 2024 - March 2, 2024"])
    sheet.append(["Day", "Campaign", "Impr.", "Clicks", "Cost"])
    sheet.append([datetime(2024, 3, 1), "Brand", 1204, 41, 172.45])
    sheet.append([datetime(2024, 3, 2), "Brand", 1180, 39, 165.1])
    sheet.append(["Total: Account", None, 2384, 80, 337.55])
    book.save(tmp_path / "report.xlsx")
    tbl = load_export(tmp_path / "report.xlsx", platform="google_ads_campaigns")
    assert tbl.frame[["date", "spend"]].values.tolist() == [["2024-03-01", 172.45],
                                                            ["2024-03-02", 165.1]]
    assert tbl.notes == [
        "Skipped 2 line(s) above the header row (report title, date range).",
        "Skipped 1 row(s): Google Ads 'Total: ...' summary rows.",
    ]


def test_google_ads_report_without_day_segment_is_refused_with_advice(tmp_path):
    path = write(tmp_path / "report.csv", "Campaign report\nMarch 2024\n"
                 "Campaign,Impr.,Clicks,Cost\nBrand,100,5,10.00\n")
    with pytest.raises(ExportFormatError, match=r"missing column\(s\) 'Day'.*Segment -> Time"):
        load_export(path, platform="google_ads_campaigns")


# --------------------------------------------------------------------------- Meta


def test_meta_ads_skips_summary_row_and_reads_amount_spent():
    tbl = load_export(FIXTURES / "meta_ads_export.csv", platform="meta_ads")
    assert tbl.table == "ad_spend"
    assert records(tbl.frame) == [
        {"date": "2024-03-01", "channel": "meta_ads", "spend": 374.4,
         "campaign": "Spring Launch - Broad", "impressions": 14200.0, "clicks": 230.0},
        {"date": "2024-03-01", "channel": "meta_ads", "spend": 100.4,
         "campaign": "Community Lookalike, 1%", "impressions": 4050.0, "clicks": 88.0},
        {"date": "2024-03-02", "channel": "meta_ads", "spend": 400.5,
         "campaign": "Spring Launch - Broad", "impressions": 15300.0, "clicks": 241.0},
        {"date": "2024-03-02", "channel": "meta_ads", "spend": 90.0,
         "campaign": "Community Lookalike, 1%", "impressions": 3900.0, "clicks": 80.0},
        {"date": "2024-03-03", "channel": "meta_ads", "spend": 324.9,
         "campaign": "Spring Launch - Broad", "impressions": 21700.0, "clicks": 300.0},
        {"date": "2024-03-03", "channel": "meta_ads", "spend": 36.2,
         "campaign": "Community Lookalike, 1%", "impressions": 4000.0, "clicks": 73.0},
    ]
    assert tbl.frame["spend"].sum() == pytest.approx(1326.40)  # = the skipped summary row
    assert tbl.notes == [
        "Skipped 1 row(s): Meta summary row (account totals, no campaign name).",
        "spend read from column 'Amount spent (USD)'.",
    ]


def test_meta_ads_without_day_breakdown_is_counted_and_any_currency_works(tmp_path):
    path = write(tmp_path / "Campaigns-Mar-1-2024-Mar-31-2024.csv",
                 '"Reporting starts","Reporting ends","Ad set name","Amount spent (EUR)"\n'
                 "2024-03-01,2024-03-31,,50.00\n"
                 '2024-03-01,2024-03-31,"Retargeting 30d","30.00"\n'
                 '2024-03-01,2024-03-31,"Prospecting","20.00"\n')
    tbl = load_export(path, platform="meta_ads")
    assert tbl.frame[["date", "campaign", "spend"]].values.tolist() == [
        ["2024-03-01", "Retargeting 30d", 30.0], ["2024-03-01", "Prospecting", 20.0]]
    assert tbl.notes == [
        "Skipped 1 row(s): Meta summary row (account totals, no campaign name).",
        "2 row(s) cover more than one day (no Day breakdown); their spend is dated at "
        "'Reporting starts'. Export with Breakdown -> By time -> Day for daily spend.",
        "spend read from column 'Amount spent (EUR)'.",
    ]


# --------------------------------------------------------------------------- Slack


def test_slack_member_list_needs_a_joined_at_option():
    with pytest.raises(MissingOptionError, match=r"options=\{'joined_at': 'YYYY-MM-DD'\}"):
        load_export(FIXTURES / "slack_member_list.csv", platform="slack_members")


def test_slack_member_list_with_joined_at_option():
    tbl = load_export(FIXTURES / "slack_member_list.csv", platform="slack_members",
                      options={"joined_at": "2023-01-10", "community": "slack-hq"})
    assert tbl.table == "members"
    assert list(tbl.frame.columns) == ["community", "joined_at", "email", "member_id"]
    assert tbl.frame["member_id"].tolist() == ["U05AN0001", "U05BE0002", "U05CH0003",
                                               "U05GU0004", "U05FA0006", "U05HA0007"]
    assert set(tbl.frame["joined_at"]) == {"2023-01-10"}
    assert set(tbl.frame["community"]) == {"slack-hq"}
    assert tbl.frame["email"].iloc[2] == "Chen.Wu@Example.com"
    assert tbl.notes == [
        "Skipped 1 row(s): Slack bot accounts.",
        "1 deactivated account(s) kept as members: the member list has no deactivation date, "
        "so left_at stays empty (the slack_member_analytics export has one).",
    ]


def test_slack_member_analytics_has_join_and_deactivation_dates():
    tbl = load_export(FIXTURES / "slack_member_analytics.csv", platform="slack_member_analytics")
    assert records(tbl.frame) == [
        {"community": "slack", "joined_at": "2023-01-10", "email": "ana@example.com",
         "left_at": None, "member_id": "U05AN0001"},
        {"community": "slack", "joined_at": "2023-02-03", "email": "ben@example.com",
         "left_at": None, "member_id": "U05BE0002"},
        {"community": "slack", "joined_at": "2023-11-14", "email": "Chen.Wu@Example.com",
         "left_at": None, "member_id": "U05CH0003"},
        {"community": "slack", "joined_at": "2022-12-01", "email": "fay@example.com",
         "left_at": "2023-06-03", "member_id": "U05FA0006"},
    ]
    assert tbl.notes == ["Skipped 1 row(s) without joined_at: accounts never claimed "
                         "(invited, never signed in)."]


# --------------------------------------------------------------------------- Discord


def test_discord_without_a_link_explains_how_to_provide_one():
    with pytest.raises(ExportFormatError) as err:
        load_export(FIXTURES / "discord_members.csv", platform="discord_members")
    message = str(err.value)
    assert "discord_members: discord_members.csv: members needs one of the columns" in message
    assert "options={'links': 'links.csv'}" in message


def test_discord_members_linked_through_a_links_file():
    tbl = load_export(FIXTURES / "discord_members.csv", platform="discord_members",
                      options={"links": FIXTURES / "discord_links.csv"})
    assert records(tbl.frame) == [
        {"community": "discord", "joined_at": "2023-01-12", "email": "ana@example.com",
         "member_id": "1094375843215269929"},
        {"community": "discord", "joined_at": "2023-02-03", "email": "ben@example.com",
         "member_id": "1094375843215270001"},
        {"community": "discord", "joined_at": "2023-11-14", "email": "chen.wu@example.com",
         "member_id": "1135029485728491520"},
        {"community": "discord", "joined_at": "2024-01-20", "email": None,
         "member_id": "1171100000000000077"},
        {"community": "discord", "joined_at": "2024-02-01", "email": None,
         "member_id": "1210000000000000042"},
    ]
    assert tbl.notes == [
        "Linked 3 of 6 row(s) through options['links'] (member_id -> customer_id / email).",
        "Skipped 1 row(s) without joined_at: members whose join date is unknown.",
        "2 of 5 row(s) have no customer_id or email; they stay unlinked.",
    ]


def test_discord_other_bot_layout_with_customer_ids_in_a_dataframe(tmp_path):
    path = write(tmp_path / "members.csv",
                 "userId,displayName,joined_at\n"
                 "42,Ana,2024-03-05T23:10:00.123000+00:00\n"
                 "43,Bo,2024-03-06T01:00:00.000000-05:00\n")
    links = pd.DataFrame({"member_id": ["42", "43"], "customer_id": ["C-1", "C-2"]})
    tbl = load_export(path, platform="discord_members",
                      options={"links": links, "community": "discord-eu",
                               "columns": {"member_id": "userId"}})
    assert records(tbl.frame) == [
        {"community": "discord-eu", "joined_at": "2024-03-05", "customer_id": "C-1",
         "member_id": "42"},
        {"community": "discord-eu", "joined_at": "2024-03-06", "customer_id": "C-2",
         "member_id": "43"},
    ]


# --------------------------------------------------------------------------- Discourse


def test_discourse_users_skip_system_and_staged_users():
    tbl = load_export(FIXTURES / "discourse_users.csv", platform="discourse_users")
    assert records(tbl.frame) == [
        {"community": "forum", "joined_at": "2022-06-01", "email": "ana@example.com",
         "member_id": "1"},
        {"community": "forum", "joined_at": "2023-02-03", "email": "ben@example.com",
         "member_id": "2"},
        {"community": "forum", "joined_at": "2023-11-14", "email": "Chen.Wu@Example.com",
         "member_id": "3"},
        {"community": "forum", "joined_at": "2024-01-20", "email": "gus@example.net",
         "member_id": "5"},
    ]
    assert tbl.notes == [
        "Skipped 2 row(s): Discourse system users (system, discobot ...).",
        "Skipped 1 row(s): staged users (created from incoming e-mail, never signed up).",
    ]


def test_discourse_zip_download_is_read_as_is(tmp_path):
    archive = tmp_path / "user-list-240331-101500-7.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(FIXTURES / "discourse_users.csv", "user-list-240331-101500.csv")
    tbl = load_export(archive, platform="discourse_users")
    assert len(tbl.frame) == 4


# --------------------------------------------------------------------------- engine details


def tiny_mapping(**spend_rule) -> PlatformMapping:
    return PlatformMapping.from_dict("tiny", {"table": "ad_spend", "columns": {
        "date": {"from": "Day"}, "channel": {"value": "tv"},
        "spend": {"from": "Cost", **spend_rule}}})


def test_numbers_lose_currency_symbols_separators_and_parentheses(tmp_path):
    path = write(tmp_path / "spend.csv", 'Day,Cost\n2024-01-01,"$1,234.56"\n'
                 "2024-01-02,(12.00)\n2024-01-03,US$ 7\n2024-01-04,--\n")
    tbl = load_export(path, platform=tiny_mapping())
    assert tbl.frame["spend"].tolist() == [1234.56, -12.0, 7.0]
    assert tbl.notes == ["Skipped 1 row(s) without spend."]


def test_decimal_comma_option_and_cents_scale(tmp_path):
    path = write(tmp_path / "spend.csv", "Day;Cost\n05 Mar 2024;1.234,50\n")
    assert load_export(path, platform=tiny_mapping(),
                       options={"decimal": ","}).frame["spend"].tolist() == [1234.5]
    cents = write(tmp_path / "cents.csv", "Day,Cost\n2024-03-05,1999\n")
    assert load_export(cents, platform=tiny_mapping(scale=0.01)).frame["spend"].tolist() == \
        [pytest.approx(19.99)]


def test_dates_keep_the_local_day_as_written(tmp_path):
    path = write(tmp_path / "spend.csv",
                 "Day,Cost\n2024-03-05 23:10:00 -0500,1\n2024-03-05T23:10:00Z,1\n"
                 "2024-03-05 00:10:00 +1400,1\n\"Mar 5, 2024 11:10 PM\",1\n\"March 5, 2024\",1\n")
    tbl = load_export(path, platform=tiny_mapping())
    assert set(tbl.frame["date"]) == {"2024-03-05"}


def test_unparseable_values_raise_with_examples_and_advice(tmp_path):
    path = write(tmp_path / "spend.csv", "Day,Cost\n05/03/2024,1\n2024-03-06,abc\n")
    with pytest.raises(ExportFormatError, match=r"column 'Day' \(date\) has 1 value\(s\) that are "
                       r"not dates, e.g. '05/03/2024'.*date_format"):
        load_export(path, platform=tiny_mapping())
    ok = load_export(path, platform=tiny_mapping(null_values=["abc"]),
                     options={"date_format": "%d/%m/%Y"})
    assert ok.frame["date"].tolist() == ["2024-03-05"]


def test_mapping_from_toml_file(tmp_path):
    toml = write(tmp_path / "my_costs.toml", """
table = "community_costs"
source = "our finance sheet"
[columns]
date = {from = "Month"}
community = {value = "discord"}
cost = {from = "Amount (EUR)"}
category = {from = "Kind", transform = "lower", optional = true}
""")
    data = write(tmp_path / "costs.csv", "Month,Amount (EUR),Kind\n2024-03-01,\"€1.200,00\",Staff\n")
    tbl = load_export(data, platform=PlatformMapping.from_toml(toml), options={"decimal": ","})
    assert tbl.table == "community_costs"
    assert records(tbl.frame) == [{"date": "2024-03-01", "community": "discord", "cost": 1200.0,
                                   "category": "staff"}]


def test_mappings_are_checked_against_the_schema():
    with pytest.raises(ValueError, match="required column"):
        PlatformMapping.from_dict("bad", {"table": "orders", "columns": {
            "customer_id": {"from": "Email"}}})
    with pytest.raises(ValueError, match="not columns of orders"):
        PlatformMapping.from_dict("bad", {"table": "orders", "columns": {
            "customer_id": "Email", "order_date": "Day", "revenue": "Total", "margin": "M"}})


def test_relative_links_path_is_found_next_to_the_export(tmp_path):
    for name in ("discord_members.csv", "discord_links.csv"):
        (tmp_path / name).write_bytes((FIXTURES / name).read_bytes())
    tbl = load_export(tmp_path / "discord_members.csv", platform="discord_members",
                      options={"links": "discord_links.csv"})
    assert tbl.frame["email"].notna().sum() == 3
    with pytest.raises(ExportFormatError, match="links file not found: nowhere.csv"):
        load_export(tmp_path / "discord_members.csv", platform="discord_members",
                    options={"links": "nowhere.csv"})


# every data row of a fixture is either in the output or counted in a note
ACCOUNTING = [
    ("shopify_orders_export.csv", "shopify_orders", {}, 9),
    ("stripe_subscriptions.csv", "stripe_subscriptions", {}, 8),
    ("hubspot_contacts.csv", "hubspot_contacts", {}, 6),
    ("google_ads_campaigns.csv", "google_ads_campaigns", {}, 9),
    ("meta_ads_export.csv", "meta_ads", {}, 7),
    ("slack_member_list.csv", "slack_members", {"joined_at": "2023-01-10"}, 7),
    ("slack_member_analytics.csv", "slack_member_analytics", {}, 5),
    ("discord_members.csv", "discord_members", {"links": FIXTURES / "discord_links.csv"}, 6),
    ("discourse_users.csv", "discourse_users", {}, 7),
]


@pytest.mark.parametrize(("file", "platform", "options", "data_rows"), ACCOUNTING)
def test_nothing_is_dropped_silently(file, platform, options, data_rows):
    tbl = load_export(FIXTURES / file, platform=platform, options=options)
    notes = " ".join(tbl.notes)
    skipped = sum(int(n) for n in re.findall(r"Skipped (\d+) row", notes))
    merged = sum(int(a) - int(b) for a, b in
                 re.findall(r"(?:Folded|Grouped) (\d+) [^.]* into (\d+)", notes))
    assert data_rows - skipped - merged == len(tbl.frame)
