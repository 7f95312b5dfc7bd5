// The official `openai` Node client against `lexembed serve`, to show nothing is Python-specific:
// embeds the texts given as JSON on stdin (the SDK's default request: base64, decoded by the SDK)
// and prints {"model", "embeddings", "prompt_tokens"} as JSON. Run with NODE_PATH pointing at the
// node_modules setup.sh installs ($LEXEMBED_HOME/node/node_modules).
//
//   node integration/node/openai_check.cjs URL [KEY] < texts.json
const OpenAI = require("openai");

async function main() {
  const [url, key] = process.argv.slice(2);
  const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key || "unused", maxRetries: 0 });
  const model = (await client.models.list()).data[0].id;
  const resp = await client.embeddings.create({ model, input: texts });
  const embeddings = resp.data.map((d) => Array.from(d.embedding));
  console.log(JSON.stringify({ model, embeddings, prompt_tokens: resp.usage.prompt_tokens }));
}

main().catch((e) => {
  console.error(`openai (node): ${e.stack || e}`);
  process.exit(1);
});
