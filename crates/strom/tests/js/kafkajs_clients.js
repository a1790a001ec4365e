// kafkajs (pure JavaScript, its own implementation of the Kafka protocol) against Strom: an admin
// creates a topic, an idempotent producer writes keyed records with headers, two consumers in one
// group split the partitions, read every record once and commit; the committed offsets are read
// back through the admin API. Prints "kafkajs ok: N records" on success; exits non-zero otherwise.
"use strict";

const { Kafka, logLevel } = require("kafkajs");

const broker = process.argv[2];
const TOPIC = "js-orders";
const GROUP = "js-group";
const PARTITIONS = 3;
const RECORDS = 600;
const DEADLINE_MS = 60000;

function fail(msg) {
  console.error("kafkajs FAILED: " + msg);
  process.exit(1);
}

async function main() {
  const kafka = new Kafka({
    clientId: "strom-kafkajs",
    brokers: [broker],
    logLevel: logLevel.WARN,
    retry: { retries: 8 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  if (!created) fail("createTopics reported the topic as existing");

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let start = 0; start < RECORDS; start += 100) {
    const messages = [];
    for (let i = start; i < start + 100; i++) {
      messages.push({
        key: "k" + i,
        value: "v" + i,
        partition: i % PARTITIONS,
        headers: { idx: String(i) },
      });
    }
    await producer.send({ topic: TOPIC, acks: -1, messages });
  }
  await producer.disconnect();

  const seen = new Map();
  const members = [];
  let resolveDone;
  const done = new Promise((resolve) => (resolveDone = resolve));
  for (let m = 0; m < 2; m++) {
    const consumer = kafka.consumer({
      groupId: GROUP,
      sessionTimeout: 10000,
      heartbeatInterval: 500,
      rebalanceTimeout: 10000,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString();
        const want = "v" + message.headers.idx.toString();
        if (v !== want) fail(`record ${v} carries header idx ${message.headers.idx}`);
        if (message.key.toString() !== "k" + v.slice(1)) fail(`key ${message.key} for ${v}`);
        if (seen.has(v)) fail(`record ${v} delivered twice`);
        seen.set(v, { partition, offset: message.offset, member: m });
        await consumer.commitOffsets([
          { topic: TOPIC, partition, offset: String(Number(message.offset) + 1) },
        ]);
        if (seen.size === RECORDS) resolveDone();
      },
    });
    members.push(consumer);
  }
  const timer = setTimeout(() => fail(`only ${seen.size} of ${RECORDS} records within ${DEADLINE_MS} ms`), DEADLINE_MS);
  await done;
  clearTimeout(timer);

  const perPartition = new Array(PARTITIONS).fill(0);
  for (const { partition } of seen.values()) perPartition[partition]++;
  for (const n of perPartition) if (n !== RECORDS / PARTITIONS) fail(`per partition ${perPartition}`);

  const offsets = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  for (const p of offsets[0].partitions) {
    if (p.offset !== String(RECORDS / PARTITIONS)) {
      fail(`committed offset of partition ${p.partition} is ${p.offset}`);
    }
  }
  const described = await admin.describeGroups([GROUP]);
  const group = described.groups[0];
  if (group.state !== "Stable" || group.members.length !== 2) {
    fail(`group is ${group.state} with ${group.members.length} members`);
  }
  for (const c of members) await c.disconnect();
  await admin.disconnect();
  console.log(`kafkajs ok: ${seen.size} records`);
}

main().catch((e) => fail(e.stack || String(e)));
