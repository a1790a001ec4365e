"""Drives Strom's web console in headless Chromium (Debian's chromium and chromedriver, through
Selenium): every page loads and shows what the node holds, records produced by a Kafka client
are browsable, a group's lag moves when it commits, the KV page lists keys and shows a change
live, a topic is created and deleted through the pages' confirmations, and the browser logs no
error. A screenshot of each page is kept in SHOTS.

Usage: console_browser.py BASE_URL KAFKA_ADDR ETCD_URL SHOTS"""
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

base, kafka, etcd, shots = sys.argv[1:5]
os.makedirs(shots, exist_ok=True)
opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--window-size=1280,1000"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# The pages re-render what they poll: an element found a moment ago may be replaced before its
# text is read. That is not a failure, only a reason to look again on the next poll.
wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))


def until(f, what):
    wait.until(lambda _d: f(), message=what)


def find(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def text(css):
    found = find(css)
    return found[0].text if found else None


def visit(route):
    driver.get(f"{base}/{route}")


def shot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def no_errors(page):
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{page}: browser errors {errors}"


def accept_dialog():
    wait.until(lambda d: d.switch_to.alert, message="a confirmation dialog")
    driver.switch_to.alert.accept()


try:
    visit("#/")
    until(lambda: text("#nodes-alive") == "1", "one node alive")
    until(lambda: text("#under-replicated") == "0", "no under-replicated partition")
    time.sleep(5)  # a few samples for the throughput chart
    shot("overview")
    no_errors("overview")

    visit("#/topics")
    until(lambda: find('tr[data-topic="orders"]'), "orders listed")
    shot("topics")
    find("#new-name")[0].send_keys("made-in-console")
    find("#create-topic")[0].click()
    accept_dialog()
    until(lambda: driver.current_url.endswith("#/topics/made-in-console"), "the new topic's page")
    until(lambda: len(find("#partitions-table tr")) == 2, "its one partition")
    no_errors("topics")

    visit("#/topics/orders")
    until(lambda: len(find("#partitions-table tr")) == 3, "two partitions")
    until(lambda: "cleanup.policy" in (text("#configs-table") or ""), "configs")
    shot("topic")
    no_errors("topic")

    visit("#/browse/orders")
    until(lambda: len(find("#records-table tr[data-offset]")) == 10, "ten records")
    rows = find("#records-table tr[data-offset]")
    assert rows[0].get_attribute("data-offset") == "9", "newest first"
    assert "k9" in rows[0].text and '{"n":9}' in rows[0].text, rows[0].text
    assert "trace: abc" in rows[0].text, rows[0].text
    shot("browse")
    find("#filter")[0].send_keys("k3")
    until(lambda: len(find("#records-table tr[data-offset]")) == 1, "the filter")
    Select(find("#as")[0]).select_by_visible_text("hex")
    until(lambda: "6b 33" in (text("#records-table") or ""), "hex view of k3")
    shot("browse-filtered")
    no_errors("browse")

    visit("#/groups")
    until(lambda: find('tr[data-group="readers"]'), "readers listed")
    shot("groups")
    visit("#/groups/readers")
    until(lambda: text("#lag-total") == "8", "lag 8")
    c = Consumer({"bootstrap.servers": kafka, "group.id": "readers"})
    c.commit(offsets=[TopicPartition("orders", 0, 10)], asynchronous=False)
    c.close()
    until(lambda: text("#lag-total") == "0", "lag falls to 0 after the commit")
    time.sleep(3)  # the lag chart's samples
    shot("group")
    # Reset to the earliest offsets through the page, after its confirmation: lag is back to 10.
    Select(find("#reset-to")[0]).select_by_visible_text("earliest")
    find("#reset-offsets")[0].click()
    accept_dialog()
    until(lambda: text("#lag-total") == "10", "lag 10 after resetting to the earliest offsets")
    no_errors("group")

    visit("#/kv")
    until(lambda: find('#kv-table tr[data-key="/app/a"]'), "the KV keys")
    find("#watch")[0].click()
    time.sleep(1)
    subprocess.run(["etcdctl", f"--endpoints={etcd}", "put", "/app/live", "now"], check=True,
                   capture_output=True)
    until(lambda: find('#kv-events li[data-key="/app/live"]'), "the change shown live")
    until(lambda: find('#kv-table tr[data-key="/app/live"]'), "the new key listed")
    shot("kv")
    no_errors("kv")

    visit("#/topics/made-in-console")
    until(lambda: len(find("#partitions-table tr")) == 2, "the topic page")
    find("#delete")[0].click()
    accept_dialog()
    until(lambda: driver.current_url.endswith("#/topics"), "back to the topics")
    until(lambda: find('tr[data-topic="orders"]') and not find('tr[data-topic="made-in-console"]'),
          "the topic gone")
    no_errors("delete")
    print("console ok")
finally:
    driver.quit()
