// HTMLRewriter (features §11) through its class, outside any worker: every
// handler kind, token property and mutation, every selector, async and class
// handlers, streaming, errors, reuse.
import assert from "node:assert/strict";
import { setImmediate } from "node:timers/promises";
import { test, type TestContext } from "node:test";
import { HTMLRewriter, withEnableEsiTags } from "../../../src/plugins/html-rewriter/rewriter.js";
import { lolHtmlPool } from "../../../src/plugins/html-rewriter/pool.js";
import type { Comment, Element, EndTag, TextChunk } from "../../../src/plugins/html-rewriter/tokens.js";
import { type BodyInit, Response } from "../../../src/standards/http.js";
import { NON_ARRAY_CHUNK_MESSAGE, STRING_CHUNK_MESSAGE, utf8Encode } from "../../helpers/http.js";
import { deferred, flushTurns } from "../../helpers/sync.js";

const STALE_MESSAGE =
  "This content token is no longer valid. Content tokens are only valid " +
  "during the execution of the relevant content handler.";

function rewrite(rewriter: HTMLRewriter, input: BodyInit | null): Promise<string> {
  return rewriter.transform(new Response(input)).text();
}

/** A stream the test feeds: push() a string, end() */
function controlledStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  return {
    stream,
    push: (chunk: string | Uint8Array) => controller.enqueue(typeof chunk === "string" ? utf8Encode(chunk) : chunk),
    end: () => controller.close(),
    error: (error: unknown) => controller.error(error),
  };
}

/** Every transform's instance went back (or was dropped): none left busy */
function assertPoolIdle(): void {
  assert.equal(lolHtmlPool.stats.busy, 0, "no lol-html instance left busy");
}

// ---------------------------------------------------------------------------
// Element
// ---------------------------------------------------------------------------

test("HTMLRewriter: element: tagName, attributes, removed, namespaceURI", async (t: TestContext) => {
  t.plan(6);
  const res = new HTMLRewriter()
    .on("p", {
      element(element) {
        t.assert.equal(element.tagName, "p");
        element.tagName = "h1";
        t.assert.equal(element.tagName, "h1");
        t.assert.deepEqual([...element.attributes], [["class", "red"], ["data-x", "Y"]]);
        t.assert.equal(element.removed, false);
        t.assert.equal(element.namespaceURI, "http://www.w3.org/1999/xhtml");
      },
    })
    .transform(new Response('<p class="red" DATA-X="Y">test</p>'));
  t.assert.equal(await res.text(), '<h1 class="red" DATA-X="Y">test</h1>');
});

test("HTMLRewriter: element: namespaceURI of svg and math elements", async () => {
  const seen: string[] = [];
  await rewrite(
    new HTMLRewriter().on("*", { element: (element) => void seen.push(`${element.tagName} ${element.namespaceURI}`) }),
    "<div><svg><rect/></svg><math></math></div>"
  );
  assert.deepEqual(seen, [
    "div http://www.w3.org/1999/xhtml",
    "svg http://www.w3.org/2000/svg",
    "rect http://www.w3.org/2000/svg",
    "math http://www.w3.org/1998/Math/MathML",
  ]);
});

test("HTMLRewriter: element: getAttribute, hasAttribute, setAttribute, removeAttribute", async (t: TestContext) => {
  t.plan(7);
  const res = new HTMLRewriter()
    .on("p", {
      element(element) {
        t.assert.equal(element.getAttribute("class"), "red");
        t.assert.equal(element.getAttribute("CLASS"), "red");
        t.assert.equal(element.getAttribute("id"), null);
        t.assert.equal(element.hasAttribute("class"), true);
        t.assert.equal(element.hasAttribute("id"), false);
        // Mutators return the element, so calls chain
        t.assert.equal(element.setAttribute("id", "header").removeAttribute("class"), element);
      },
    })
    .transform(new Response('<p class="red">test</p>'));
  t.assert.equal(await res.text(), '<p id="header">test</p>');
});

test("HTMLRewriter: element: attribute values and content can be any Unicode", async () => {
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        const title = element.getAttribute("title");
        element.setAttribute("data-title", `${title} 👋`);
        element.setInnerContent(`<b>é ${title}</b>`, { html: true });
      },
    }),
    '<p title="Ça va">old</p>'
  );
  assert.equal(res, '<p title="Ça va" data-title="Ça va 👋"><b>é Ça va</b></p>');
});

test("HTMLRewriter: element: empty strings as names' values and content", async () => {
  const res = await rewrite(
    new HTMLRewriter()
      .on("p", {
        element(element) {
          element.setAttribute("a", "").setInnerContent("").before("");
        },
      })
      .onDocument({ comments: (comment) => void (comment.text = "") }),
    "<p>x</p><!--c-->"
  );
  assert.equal(res, '<p a=""></p><!---->');
});

test("HTMLRewriter: element: prepend, append (text and html)", async () => {
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        element.prepend("<span>prepend</span>");
        element.prepend("<span>prepend html</span>", { html: true });
        element.append("<span>append</span>");
        element.append("<span>append html</span>", { html: true });
      },
    }),
    "<p>test</p>"
  );
  assert.equal(
    res,
    "<p><span>prepend html</span>&lt;span&gt;prepend&lt;/span&gt;test" +
      "&lt;span&gt;append&lt;/span&gt;<span>append html</span></p>"
  );
});

test("HTMLRewriter: element: setInnerContent (text and html), removeAndKeepContent", async () => {
  const inner = (options?: { html: boolean }) =>
    new HTMLRewriter().on("p", { element: (element) => void element.setInnerContent("<span>new</span>", options) });
  assert.equal(await rewrite(inner(), "<p>test</p>"), "<p>&lt;span&gt;new&lt;/span&gt;</p>");
  assert.equal(await rewrite(inner({ html: false }), "<p>test</p>"), "<p>&lt;span&gt;new&lt;/span&gt;</p>");
  assert.equal(await rewrite(inner({ html: true }), "<p>test</p>"), "<p><span>new</span></p>");
  const keep = new HTMLRewriter().on("p", { element: (element) => void element.removeAndKeepContent() });
  assert.equal(await rewrite(keep, "<div><p>test <b>bold</b></p></div>"), "<div>test <b>bold</b></div>");
});

test("HTMLRewriter: element: a tag or attribute name that isn't valid throws lol-html's TypeError", async () => {
  const errors: string[] = [];
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        for (const mutate of [() => (element.tagName = "a b"), () => element.setAttribute("a b", "c")]) {
          try {
            mutate();
          } catch (error) {
            assert(error instanceof TypeError);
            errors.push(error.message);
          }
        }
      },
    }),
    "<p>x</p>"
  );
  assert.deepEqual(errors, [
    "Parser error: ` ` character is forbidden in the tag name",
    "Parser error: ` ` character is forbidden in the attribute name",
  ]);
  assert.equal(res, "<p>x</p>");
  assertPoolIdle();
});

// ---------------------------------------------------------------------------
// Mutations shared by elements, comments, text chunks (and end tags)
// ---------------------------------------------------------------------------

type Mutable = Element | Comment | TextChunk;
type Register = (rewriter: HTMLRewriter, handler: (token: any) => void | Promise<void>) => HTMLRewriter;

interface MutationCase {
  name: string;
  input: string;
  register: Register;
  beforeAfter: string;
  replace: string;
  replaceHtml: string;
  remove: string;
}

const elementResults = {
  input: "<p>test</p>",
  beforeAfter:
    "&lt;span&gt;before&lt;/span&gt;<span>before html</span><p>test</p>" +
    "<span>after html</span>&lt;span&gt;after&lt;/span&gt;",
  replace: "&lt;span&gt;replace&lt;/span&gt;",
  replaceHtml: "<span>replace</span>",
  remove: "",
};
const commentResults = {
  input: "<p><!--test--></p>",
  beforeAfter:
    "<p>&lt;span&gt;before&lt;/span&gt;<span>before html</span><!--test-->" +
    "<span>after html</span>&lt;span&gt;after&lt;/span&gt;</p>",
  replace: "<p>&lt;span&gt;replace&lt;/span&gt;</p>",
  replaceHtml: "<p><span>replace</span></p>",
  remove: "<p></p>",
};
// (One character: one chunk with text, then the empty last chunk)
const textResults = {
  input: "<p>t</p>",
  beforeAfter:
    "<p>&lt;span&gt;before&lt;/span&gt;<span>before html</span>t" +
    "<span>after html</span>&lt;span&gt;after&lt;/span&gt;</p>",
  replace: "<p>&lt;span&gt;replace&lt;/span&gt;</p>",
  replaceHtml: "<p><span>replace</span></p>",
  remove: "<p></p>",
};

const MUTATION_CASES: MutationCase[] = [
  { name: "element", register: (rw, element) => rw.on("p", { element }), ...elementResults },
  { name: "comments", register: (rw, comments) => rw.on("p", { comments }), ...commentResults },
  { name: "document comments", register: (rw, comments) => rw.onDocument({ comments }), ...commentResults },
  { name: "text", register: (rw, text) => rw.on("p", { text }), ...textResults },
  { name: "document text", register: (rw, text) => rw.onDocument({ text }), ...textResults },
];

for (const c of MUTATION_CASES) {
  test(`HTMLRewriter: ${c.name}: before, after, replace, remove, removed`, async () => {
    // Text handlers also see the empty last chunk: leave that one alone
    const skip = (token: Mutable) => "lastInTextNode" in token && token.lastInTextNode;
    const beforeAfter = c.register(new HTMLRewriter(), (token: Mutable) => {
      if (skip(token)) return;
      const chained = token
        .before("<span>before</span>")
        .before("<span>before html</span>", { html: true })
        .after("<span>after</span>")
        .after("<span>after html</span>", { html: true });
      assert.equal(chained, token);
    });
    assert.equal(await rewrite(beforeAfter, c.input), c.beforeAfter);

    const replace = (options?: { html: boolean }) =>
      c.register(new HTMLRewriter(), (token: Mutable) => {
        if (!skip(token)) token.replace("<span>replace</span>", options);
      });
    assert.equal(await rewrite(replace(), c.input), c.replace);
    assert.equal(await rewrite(replace({ html: true }), c.input), c.replaceHtml);

    const remove = c.register(new HTMLRewriter(), (token: Mutable) => {
      if (skip(token)) return;
      assert.equal(token.removed, false);
      assert.equal(token.remove(), token);
      assert.equal(token.removed, true);
    });
    assert.equal(await rewrite(remove, c.input), c.remove);
  });

  test(`HTMLRewriter: ${c.name}: async handler`, async () => {
    const rewriter = c.register(new HTMLRewriter(), async (token: Mutable) => {
      if ("lastInTextNode" in token && token.lastInTextNode) return;
      await setImmediate();
      token.replace("<span>replace</span>", { html: true });
    });
    assert.equal(await rewrite(rewriter, c.input), c.replaceHtml);
  });
}

// ---------------------------------------------------------------------------
// End tags
// ---------------------------------------------------------------------------

test("HTMLRewriter: end tag: name, and `this` is the element", async (t: TestContext) => {
  t.plan(4);
  const res = new HTMLRewriter()
    .on("p", {
      element(element) {
        t.assert.equal(
          element.onEndTag(function (this: Element, end: EndTag) {
            t.assert.equal(this, element);
            t.assert.equal(end.name, "p");
            end.name = "h1";
          }),
          undefined
        );
      },
    })
    .transform(new Response("<p>test</p>"));
  t.assert.equal(await res.text(), "<p>test</h1>");
});

test("HTMLRewriter: end tag: before, after, remove", async () => {
  const beforeAfter = new HTMLRewriter().on("p", {
    element(element) {
      element.onEndTag((end) => {
        end.before("<span>before</span>").before("<span>before html</span>", { html: true });
        end.after("<span>after</span>").after("<span>after html</span>", { html: true });
      });
    },
  });
  assert.equal(
    await rewrite(beforeAfter, "<p>test</p>"),
    "<p>test&lt;span&gt;before&lt;/span&gt;<span>before html</span></p>" +
      "<span>after html</span>&lt;span&gt;after&lt;/span&gt;"
  );
  const remove = new HTMLRewriter().on("p", {
    element: (element) => element.onEndTag((end) => void end.remove()),
  });
  assert.equal(await rewrite(remove, "<p>test</p>"), "<p>test");
});

test("HTMLRewriter: end tag: async handler", async () => {
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        element.onEndTag(async (end) => {
          await setImmediate();
          end.before("!");
        });
      },
    }),
    "<p>test</p>"
  );
  assert.equal(res, "<p>test!</p>");
});

test("HTMLRewriter: end tag: a second onEndTag() replaces the first (lol-html 0.4's behaviour)", async () => {
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        element.onEndTag((end) => void end.before("1"));
        element.onEndTag((end) => void end.before("2"));
      },
    }),
    "<p>test</p>"
  );
  assert.equal(res, "<p>test2</p>");
});

test("HTMLRewriter: end tag: the element it's bound to is stale by then", async () => {
  let message: string | undefined;
  await rewrite(
    new HTMLRewriter().on("p", {
      element(element) {
        element.onEndTag(function (this: Element) {
          try {
            this.getAttribute("x");
          } catch (error) {
            message = (error as Error).message;
          }
        });
      },
    }),
    "<p>test</p>"
  );
  assert.equal(message, STALE_MESSAGE);
});

// ---------------------------------------------------------------------------
// Comments, text
// ---------------------------------------------------------------------------

for (const [name, register] of [
  ["comments", (rw: HTMLRewriter, comments: (c: Comment) => void) => rw.on("p", { comments })],
  ["document comments", (rw: HTMLRewriter, comments: (c: Comment) => void) => rw.onDocument({ comments })],
] as const) {
  test(`HTMLRewriter: ${name}: text get and set`, async (t: TestContext) => {
    t.plan(3);
    const rewriter = register(new HTMLRewriter(), (comment) => {
      t.assert.equal(comment.removed, false);
      t.assert.equal(comment.text, "test");
      comment.text = "new";
    });
    t.assert.equal(await rewrite(rewriter, "<p><!--test--></p>"), "<p><!--new--></p>");
  });
}

for (const [name, register] of [
  ["text", (rw: HTMLRewriter, text: (t: TextChunk) => void) => rw.on("p", { text })],
  ["document text", (rw: HTMLRewriter, text: (t: TextChunk) => void) => rw.onDocument({ text })],
] as const) {
  test(`HTMLRewriter: ${name}: text, lastInTextNode, removed`, async () => {
    const seen: [string, boolean, boolean][] = [];
    const rewriter = register(new HTMLRewriter(), (text) => {
      seen.push([text.text, text.lastInTextNode, text.removed]);
    });
    assert.equal(await rewrite(rewriter, "<p>t</p>"), "<p>t</p>");
    assert.deepEqual(seen, [
      ["t", false, false],
      ["", true, false],
    ]);
  });
}

test("HTMLRewriter: document text: every text node, elements' handlers first", async () => {
  const seen: string[] = [];
  await rewrite(
    new HTMLRewriter()
      .onDocument({ text: (text) => void (text.text && seen.push(`document ${text.text}`)) })
      .on("b", { text: (text) => void (text.text && seen.push(`b ${text.text}`)) }),
    "a<b>b</b>c"
  );
  assert.deepEqual(seen, ["document a", "b b", "document b", "document c"]);
});

// ---------------------------------------------------------------------------
// Document: doctype, end
// ---------------------------------------------------------------------------

const DOCTYPE_INPUT =
  '<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd"><html lang="en"></html>';

test("HTMLRewriter: doctype: name, publicId, systemId", async () => {
  const seen: (string | null)[][] = [];
  const rewriter = new HTMLRewriter().onDocument({
    doctype: (doctype) => void seen.push([doctype.name, doctype.publicId, doctype.systemId]),
  });
  assert.equal(await rewrite(rewriter, DOCTYPE_INPUT), DOCTYPE_INPUT);
  assert.equal(await rewrite(rewriter, "<!doctype html><p>x</p>"), "<!doctype html><p>x</p>");
  assert.deepEqual(seen, [
    ["html", "-//W3C//DTD HTML 4.01//EN", "http://www.w3.org/TR/html4/strict.dtd"],
    ["html", null, null],
  ]);
});

test("HTMLRewriter: doctype: async handler", async () => {
  const seen: (string | null)[] = [];
  const rewriter = new HTMLRewriter().onDocument({
    async doctype(doctype) {
      await setImmediate();
      seen.push(doctype.name);
    },
  });
  assert.equal(await rewrite(rewriter, DOCTYPE_INPUT), DOCTYPE_INPUT);
  assert.deepEqual(seen, ["html"]);
});

test("HTMLRewriter: end: append (text and html)", async () => {
  const res = await rewrite(
    new HTMLRewriter().onDocument({
      end(end) {
        assert.equal(end.append("<span>append</span>"), end);
        end.append("<span>append html</span>", { html: true });
      },
    }),
    "<p>test</p>"
  );
  assert.equal(res, "<p>test</p>&lt;span&gt;append&lt;/span&gt;<span>append html</span>");
});

test("HTMLRewriter: end: async handler", async () => {
  const res = await rewrite(
    new HTMLRewriter().onDocument({
      async end(end) {
        await setImmediate();
        end.append("<span>append html</span>", { html: true });
      },
    }),
    "<p>test</p>"
  );
  assert.equal(res, "<p>test</p><span>append html</span>");
});

// ---------------------------------------------------------------------------
// Class handlers (methods on the prototype, `this` the instance)
// ---------------------------------------------------------------------------

test("HTMLRewriter: class instances as handlers, for every handler kind", async () => {
  class ElementHandler {
    constructor(private readonly suffix: string) {}
    element(element: Element) {
      element.setAttribute("data-suffix", this.suffix);
    }
    comments(comment: Comment) {
      comment.text += this.suffix;
    }
    text(text: TextChunk) {
      if (text.text) text.after(this.suffix);
    }
  }
  class DocumentHandler {
    readonly seen: string[] = [];
    constructor(private readonly suffix: string) {}
    doctype() {
      this.seen.push("doctype");
    }
    comments(comment: Comment) {
      comment.text += this.suffix;
    }
    text(text: TextChunk) {
      if (text.lastInTextNode) this.seen.push("text");
    }
    async end(end: { append(content: string): void }) {
      await setImmediate();
      end.append(this.suffix);
    }
  }
  const documentHandler = new DocumentHandler("!");
  const res = await rewrite(
    new HTMLRewriter().on("p", new ElementHandler("?")).onDocument(documentHandler),
    "<!DOCTYPE html><p>a<!--b--></p>"
  );
  assert.equal(res, '<!DOCTYPE html><p data-suffix="?">a?<!--b?!--></p>!');
  assert.deepEqual(documentHandler.seen, ["doctype", "text"]);
});

test("HTMLRewriter: a handler returning a thenable that isn't a promise isn't waited for", async () => {
  let thenCalled = false;
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element: () =>
        ({
          then() {
            thenCalled = true;
          },
        }) as unknown as void,
    }),
    "<p>x</p>"
  );
  assert.equal(res, "<p>x</p>");
  assert.equal(thenCalled, false);
});

test("HTMLRewriter: several handlers on one selector run in order", async () => {
  const res = await rewrite(
    new HTMLRewriter()
      .on("p", { element: (element) => void element.setAttribute("x", "1") })
      .on("p", { element: (element) => void element.setAttribute("y", `${element.getAttribute("x")}2`) })
      .on("h1", { element: (element) => void element.setInnerContent("new h1") }),
    "<h1>old</h1><p>old</p>"
  );
  assert.equal(res, '<h1>new h1</h1><p x="1" y="12">old</p>');
});

// ---------------------------------------------------------------------------
// Selectors (§11)
// ---------------------------------------------------------------------------

const SELECTORS: [selector: string, input: string, expected: string][] = [
  ["*", "<h1>1</h1><p>2</p>", "<h1>new</h1><p>new</p>"],
  ["p", "<h1>1</h1><p>2</p>", "<h1>1</h1><p>new</p>"],
  ["p:nth-child(2)", "<div><p>1</p><p>2</p><p>3</p></div>", "<div><p>1</p><p>new</p><p>3</p></div>"],
  ["p:first-child", "<div><p>1</p><p>2</p><p>3</p></div>", "<div><p>new</p><p>2</p><p>3</p></div>"],
  [
    "p:nth-of-type(2)",
    "<div><p>1</p><h1>2</h1><p>3</p><h1>4</h1><p>5</p></div>",
    "<div><p>1</p><h1>2</h1><p>new</p><h1>4</h1><p>5</p></div>",
  ],
  ["p:first-of-type", "<div><h1>1</h1><p>2</p><p>3</p></div>", "<div><h1>1</h1><p>new</p><p>3</p></div>"],
  ["p:not(:first-child)", "<div><p>1</p><p>2</p><p>3</p></div>", "<div><p>1</p><p>new</p><p>new</p></div>"],
  ["p.red", '<p class="red">1</p><p>2</p>', '<p class="red">new</p><p>2</p>'],
  ["h1#header", '<h1 id="header">1</h1><h1>2</h1>', '<h1 id="header">new</h1><h1>2</h1>'],
  ["p[data-test]", "<p data-test>1</p><p>2</p>", "<p data-test>new</p><p>2</p>"],
  [
    'p[data-test="one"]',
    '<p data-test="one">1</p><p data-test="two">2</p>',
    '<p data-test="one">new</p><p data-test="two">2</p>',
  ],
  [
    'p[data-test="one" i]',
    '<p data-test="one">1</p><p data-test="OnE">2</p><p data-test="two">3</p>',
    '<p data-test="one">new</p><p data-test="OnE">new</p><p data-test="two">3</p>',
  ],
  [
    'p[data-test="one" s]',
    '<p data-test="one">1</p><p data-test="OnE">2</p><p data-test="two">3</p>',
    '<p data-test="one">new</p><p data-test="OnE">2</p><p data-test="two">3</p>',
  ],
  [
    'p[data-test~="two"]',
    '<p data-test="one two three">1</p><p data-test="one two">2</p><p data-test="one">3</p>',
    '<p data-test="one two three">new</p><p data-test="one two">new</p><p data-test="one">3</p>',
  ],
  [
    'p[data-test^="a"]',
    '<p data-test="a1">1</p><p data-test="a2">2</p><p data-test="b1">3</p>',
    '<p data-test="a1">new</p><p data-test="a2">new</p><p data-test="b1">3</p>',
  ],
  [
    'p[data-test$="1"]',
    '<p data-test="a1">1</p><p data-test="a2">2</p><p data-test="b1">3</p>',
    '<p data-test="a1">new</p><p data-test="a2">2</p><p data-test="b1">new</p>',
  ],
  [
    'p[data-test*="b"]',
    '<p data-test="abc">1</p><p data-test="ab">2</p><p data-test="a">3</p>',
    '<p data-test="abc">new</p><p data-test="ab">new</p><p data-test="a">3</p>',
  ],
  [
    'p[data-test|="a"]',
    '<p data-test="a">1</p><p data-test="a-1">2</p><p data-test="a2">3</p>',
    '<p data-test="a">new</p><p data-test="a-1">new</p><p data-test="a2">3</p>',
  ],
  [
    "div span",
    "<div><h1><span>1</span></h1><span>2</span><b>3</b></div>",
    "<div><h1><span>new</span></h1><span>new</span><b>3</b></div>",
  ],
  [
    "div > span",
    "<div><h1><span>1</span></h1><span>2</span><b>3</b></div>",
    "<div><h1><span>1</span></h1><span>new</span><b>3</b></div>",
  ],
];

for (const [selector, input, expected] of SELECTORS) {
  test(`HTMLRewriter: selector ${selector}`, async () => {
    const rewriter = new HTMLRewriter().on(selector, { element: (element) => void element.setInnerContent("new") });
    assert.equal(await rewrite(rewriter, input), expected);
  });
}

for (const [selector, message] of [
  ["p:last-child", "Parser error: Unsupported pseudo-class or pseudo-element in selector."],
  ["p[", "Parser error: Unexpected end of selector."],
]) {
  test(`HTMLRewriter: selector ${selector}: reading the body rejects with lol-html's TypeError`, async () => {
    // on() takes it: the selector is parsed when the body is read
    const rewriter = new HTMLRewriter().on(selector, { element: (element) => void element.setInnerContent("new") });
    const res = rewriter.transform(new Response("<p>old</p>"));
    await assert.rejects(res.text(), (error) => error instanceof TypeError && error.message === message);
    assertPoolIdle();
  });
}

// ---------------------------------------------------------------------------
// Responses and streaming
// ---------------------------------------------------------------------------

test("HTMLRewriter: transform: copies status and headers, drops Content-Length", async () => {
  const res = new HTMLRewriter()
    .on("p", { element: (element) => void element.setInnerContent("very long new text") })
    .transform(
      new Response("<p>old</p>", {
        status: 404,
        statusText: "Nope",
        headers: { "Content-Type": "text/html", "Content-Length": "10", "X-Message": "test" },
      })
    );
  assert(res instanceof Response);
  assert.equal(res.status, 404);
  assert.equal(res.statusText, "Nope");
  assert.equal(res.headers.get("Content-Type"), "text/html");
  assert.equal(res.headers.get("X-Message"), "test");
  assert.equal(res.headers.has("Content-Length"), false);
  assert.equal(await res.text(), "<p>very long new text</p>");
});

test("HTMLRewriter: transform: a null body stays null, and no handler runs", async () => {
  let ran = false;
  const rewriter = new HTMLRewriter().onDocument({ end: () => void (ran = true) });
  const res = rewriter.transform(new Response(null, { status: 204, headers: { "X-Message": "test" } }));
  assert.equal(res.body, null);
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("X-Message"), "test");
  assert.equal(await res.text(), "");
  assert.equal(ran, false);
});

test("HTMLRewriter: transform: an empty body runs the end handler", async () => {
  const rewriter = new HTMLRewriter().onDocument({ end: (end) => void end.append("end") });
  assert.equal(await rewrite(rewriter, ""), "end");
  assert.equal(await rewrite(rewriter, new ReadableStream({ start: (c) => c.close() })), "end");
});

test("HTMLRewriter: transform: nothing runs until the body is read", async () => {
  const chunks: string[] = [];
  const res = new HTMLRewriter()
    .on("p", { text: (text) => void (text.text && chunks.push(text.text)) })
    .transform(new Response("<p>1</p><p>2</p><p>3</p>"));
  await flushTurns();
  assert.deepEqual(chunks, []);
  await res.arrayBuffer();
  assert.deepEqual(chunks, ["1", "2", "3"]);
});

test("HTMLRewriter: transform: output streams as input arrives", async () => {
  const input = controlledStream();
  const texts: [string, boolean][] = [];
  const res = new HTMLRewriter()
    .on("p", { text: (text) => void texts.push([text.text, text.lastInTextNode]) })
    .on("b", { element: (element) => void element.setAttribute("seen", "") })
    .transform(new Response(input.stream));
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let output = "";
  /** Reads until the output so far ends with `end` (the input stays open) */
  async function readUntil(end: string): Promise<void> {
    while (!output.endsWith(end)) {
      const { done, value } = await reader.read();
      assert.equal(done, false);
      output += decoder.decode(value, { stream: true });
    }
  }

  input.push('<html lang="en"><bo');
  await readUntil('<html lang="en">');
  input.push("dy><p>te");
  await readUntil("<body><p>te");
  // The text handler has seen the text so far, not the rest
  assert.deepEqual(texts, [["te", false]]);

  input.push("st</p><b>x</b></body>");
  input.push("</html>");
  input.end();
  for (let result = await reader.read(); !result.done; result = await reader.read()) {
    output += decoder.decode(result.value, { stream: true });
  }
  assert.equal(output, '<html lang="en"><body><p>test</p><b seen="">x</b></body></html>');
  assert.deepEqual(texts, [
    ["te", false],
    ["st", false],
    ["", true],
  ]);
});

test("HTMLRewriter: transform: input chunks split inside a UTF-8 character or tag", async () => {
  const bytes = utf8Encode('<p title="é">ça 👋</p>');
  const input = controlledStream();
  // One byte at a time: every multi-byte character is split
  for (let i = 0; i < bytes.length; i++) input.push(bytes.slice(i, i + 1));
  input.end();
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      element: (element) => void element.setAttribute("data-title", element.getAttribute("title")!),
    }),
    input.stream
  );
  assert.equal(res, '<p title="é" data-title="é">ça 👋</p>');
});

test("HTMLRewriter: transform: input over 64 KiB, as one string or one chunk", async () => {
  const page = `<div>${"<p>x</p>".repeat(20_000)}</div>`;
  const expected = `<div>${'<p n="1">x</p>'.repeat(20_000)}</div>`;
  let count = 0;
  const rewriter = new HTMLRewriter().on("p", {
    element(element) {
      count++;
      element.setAttribute("n", "1");
    },
  });
  assert.equal(await rewrite(rewriter, page), expected);
  const input = controlledStream();
  input.push(page);
  input.end();
  assert.equal(await rewrite(rewriter, input.stream), expected);
  assert.equal(count, 40_000);
});

test("HTMLRewriter: transform: ArrayBuffer and ArrayBufferView chunks", async () => {
  const input = new ReadableStream<unknown>({
    start(controller) {
      controller.enqueue(utf8Encode("<p>").buffer);
      const test = utf8Encode("test");
      controller.enqueue(new Uint16Array(test.buffer, test.byteOffset, test.byteLength / 2));
      const end = utf8Encode("</p>");
      controller.enqueue(new DataView(end.buffer, end.byteOffset, end.byteLength));
      controller.close();
    },
  });
  const texts: string[] = [];
  const res = await rewrite(
    new HTMLRewriter().on("p", { text: (text) => void (text.text && texts.push(text.text)) }),
    input as ReadableStream<Uint8Array>
  );
  assert.equal(res, "<p>test</p>");
  assert.equal(texts.join(""), "test");
  assertPoolIdle();
});

for (const [what, chunk, message] of [
  ["string", "I'm a string", STRING_CHUNK_MESSAGE],
  ["number", 42, NON_ARRAY_CHUNK_MESSAGE],
] as const) {
  test(`HTMLRewriter: transform: a ${what} chunk fails the read with TypeError`, async () => {
    const input = new ReadableStream<unknown>({
      start(controller) {
        controller.enqueue(utf8Encode("<p>"));
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = new HTMLRewriter().transform(new Response(input as ReadableStream<Uint8Array>));
    await assert.rejects(res.text(), (error) => error instanceof TypeError && error.message === message);
    assertPoolIdle();
  });
}

test("HTMLRewriter: transform: a response made by Node's own Response class", async () => {
  const res = new HTMLRewriter()
    .on("p", { element: (element) => void element.setInnerContent("new") })
    .transform(new globalThis.Response("<p>old</p>", { status: 201 }));
  assert(res instanceof Response);
  assert.equal(res.status, 201);
  assert.equal(await res.text(), "<p>new</p>");
});

test("HTMLRewriter: transform: the input's body is taken (bodyUsed, locked)", async () => {
  const stringInput = new Response("<p>x</p>");
  const fromString = new HTMLRewriter().transform(stringInput);
  assert.equal(stringInput.bodyUsed, true);
  await assert.rejects(stringInput.text(), TypeError);
  assert.equal(await fromString.text(), "<p>x</p>");

  const input = controlledStream();
  const streamInput = new Response(input.stream);
  new HTMLRewriter().transform(streamInput);
  assert.equal(streamInput.body!.locked, true);
});

test("HTMLRewriter: transform: a body already read fails the read with TypeError", async () => {
  for (const body of ["<p>x</p>", new ReadableStream({ start: (c) => c.close() })]) {
    const used = new Response(body);
    await used.text();
    const res = new HTMLRewriter().transform(used);
    await assert.rejects(res.text(), new TypeError("Invalid state: ReadableStream is locked"));
  }
});

test("HTMLRewriter: transform: a value that isn't a response throws Miniflare 2's TypeError", () => {
  assert.throws(
    () => new HTMLRewriter().transform("<p>x</p>" as unknown as Response),
    new TypeError("Cannot read properties of undefined (reading 'pipeTo')")
  );
});

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const HANDLER_ERRORS: [name: string, rewriter: () => HTMLRewriter, expected: unknown][] = [
  [
    "element handler",
    () =>
      new HTMLRewriter().on("p", {
        element() {
          throw new Error("Whoops!");
        },
      }),
    new Error("Whoops!"),
  ],
  [
    "end handler",
    () =>
      new HTMLRewriter().onDocument({
        end() {
          throw new Error("Whoops!");
        },
      }),
    new Error("Whoops!"),
  ],
  [
    "async handler",
    () =>
      new HTMLRewriter().on("p", {
        async text() {
          await setImmediate();
          throw new RangeError("Later!");
        },
      }),
    new RangeError("Later!"),
  ],
  [
    "end tag handler",
    () =>
      new HTMLRewriter().on("p", {
        element(element) {
          element.onEndTag(() => {
            throw new Error("Whoops!");
          });
        },
      }),
    new Error("Whoops!"),
  ],
];

for (const [name, make, expected] of HANDLER_ERRORS) {
  test(`HTMLRewriter: errors: one thrown by an ${name} fails the read with it`, async () => {
    const before = lolHtmlPool.stats.discarded;
    await assert.rejects(rewrite(make(), "<p>test</p>"), expected as Error);
    assertPoolIdle();
    // The instance the error crossed isn't reused
    assert.equal(lolHtmlPool.stats.discarded, before + 1);
  });
}

test("HTMLRewriter: errors: a thrown value that isn't an Error is rethrown as is", async () => {
  const rewriter = new HTMLRewriter().on("p", {
    element() {
      throw "boom";
    },
  });
  await assert.rejects(rewrite(rewriter, "<p>x</p>"), (error) => error === "boom");
});

test("HTMLRewriter: errors: a handler that isn't a function fails the read (as in Miniflare 2)", async () => {
  const rewriter = new HTMLRewriter().on("p", { element: 42 as unknown as () => void });
  await assert.rejects(rewrite(rewriter, "<p>x</p>"), new TypeError("getObject(...).call is not a function"));
  const endTag = new HTMLRewriter().on("p", { element: (element) => element.onEndTag(42 as unknown as () => void) });
  await assert.rejects(rewrite(endTag, "<p>x</p>"), new TypeError("handler.bind is not a function"));
});

test("HTMLRewriter: errors: an input stream that errors fails the read with its error", async () => {
  const input = controlledStream();
  const before = lolHtmlPool.stats.discarded;
  const res = new HTMLRewriter().on("p", { element: () => {} }).transform(new Response(input.stream));
  const reader = res.body!.getReader();
  input.push("<div><p>x</p>");
  assert.equal((await reader.read()).done, false);
  const error = new Error("input failed");
  const reading = reader.read();
  input.error(error);
  await assert.rejects(reading, error);
  assertPoolIdle();
  // Not the instance's fault: it goes back
  assert.equal(lolHtmlPool.stats.discarded, before);
});

// ---------------------------------------------------------------------------
// Tokens only live during their handler
// ---------------------------------------------------------------------------

test("HTMLRewriter: tokens: stale after their handler returns", async () => {
  let kept: Element | undefined;
  let keptText: TextChunk | undefined;
  await rewrite(
    new HTMLRewriter().on("p", {
      element: (element) => void (kept = element),
      text: (text) => void (keptText ??= text),
    }),
    "<p>x</p><div>y</div>"
  );
  assert.throws(() => kept!.setAttribute("a", "b"), new TypeError(STALE_MESSAGE));
  assert.throws(() => kept!.tagName, new TypeError(STALE_MESSAGE));
  assert.throws(() => keptText!.text, new TypeError(STALE_MESSAGE));
});

test("HTMLRewriter: tokens: an async handler's token is valid until its promise settles", async () => {
  let kept: Element | undefined;
  const res = await rewrite(
    new HTMLRewriter().on("p", {
      async element(element) {
        kept = element;
        await setImmediate();
        element.setAttribute("a", "1");
        await setImmediate();
        element.setAttribute("b", "2");
      },
    }),
    "<p>x</p>"
  );
  assert.equal(res, '<p a="1" b="2">x</p>');
  assert.throws(() => kept!.getAttribute("a"), new TypeError(STALE_MESSAGE));
});

test("HTMLRewriter: tokens: can't be constructed; no internals showing", async () => {
  let element: Element | undefined;
  await rewrite(new HTMLRewriter().on("p", { element: (e) => void (element = e) }), "<p>x</p>");
  const Klass = element!.constructor as new (...args: unknown[]) => unknown;
  assert.equal(Klass.name, "Element");
  assert.throws(() => new Klass(), new TypeError("Illegal constructor"));
  assert.deepEqual(Object.getOwnPropertyNames(element), []);
  assert.deepEqual(Object.getOwnPropertySymbols(element), []);
});

// ---------------------------------------------------------------------------
// The rewriter object
// ---------------------------------------------------------------------------

test("HTMLRewriter: the same rewriter transforms again and again", async () => {
  const rewriter = new HTMLRewriter().on("p", { element: (element) => void element.setInnerContent("new") });
  for (let i = 0; i < 3; i++) assert.equal(await rewrite(rewriter, `<p>old ${i}</p>`), "<p>new</p>");
  // A handler added later applies to later transforms only
  const before = rewriter.transform(new Response("<p>a</p><b>b</b>"));
  rewriter.on("b", { element: (element) => void element.setInnerContent("bold") });
  const after = rewriter.transform(new Response("<p>a</p><b>b</b>"));
  assert.equal(await before.text(), "<p>new</p><b>b</b>");
  assert.equal(await after.text(), "<p>new</p><b>bold</b>");
});

test("HTMLRewriter: hides implementation details", () => {
  const rewriter = new HTMLRewriter();
  assert.deepEqual(Object.getOwnPropertyNames(rewriter), []);
  assert.deepEqual(Object.getOwnPropertyNames(HTMLRewriter.prototype).sort(), [
    "constructor",
    "on",
    "onDocument",
    "transform",
  ]);
  assert.equal(rewriter.on("p", {}), rewriter);
  assert.equal(rewriter.onDocument({}), rewriter);
});

test("HTMLRewriter: withEnableEsiTags makes <esi:include> a void tag", async () => {
  const input = '<span><esi:include src="a"><span>x</span></span>';
  const make = () => new HTMLRewriter().on("esi\\:include", { element: (element) => void element.replace("I") });
  assert.equal(await rewrite(make(), input), "<span>I");
  const esi = make();
  assert.equal(withEnableEsiTags(esi), esi);
  assert.equal(await rewrite(esi, input), "<span>I<span>x</span></span>");
});

// ---------------------------------------------------------------------------
// Cancelling
// ---------------------------------------------------------------------------

test("HTMLRewriter: cancelling the body cancels the input and frees the rewriter", async () => {
  let cancelled: unknown;
  const input = new ReadableStream<Uint8Array>({
    pull: (controller) => controller.enqueue(utf8Encode("<p>x</p>")),
    cancel: (reason) => void (cancelled = reason),
  });
  const before = lolHtmlPool.stats;
  const res = new HTMLRewriter().on("p", { element: () => {} }).transform(new Response(input));
  const reader = res.body!.getReader();
  await reader.read();
  assert.equal(lolHtmlPool.stats.busy, before.busy + 1);
  await reader.cancel("stop");
  assert.equal(cancelled, "stop");
  assertPoolIdle();
  // Cancelled between chunks: the instance was clean, and goes back
  assert.equal(lolHtmlPool.stats.discarded, before.discarded);
});

test("HTMLRewriter: cancelling while a handler is pending gives the instance up; its token goes stale", async () => {
  const waiting = deferred();
  const resumed = deferred<unknown>();
  const before = lolHtmlPool.stats;
  const res = new HTMLRewriter()
    .on("p", {
      async element(element) {
        waiting.resolve();
        await new Promise<void>((resolve) => inputResume.push(resolve));
        try {
          element.setAttribute("late", "");
          resumed.resolve("no error");
        } catch (error) {
          resumed.resolve(error);
        }
      },
    })
    .transform(new Response("<p>x</p>"));
  const inputResume: (() => void)[] = [];
  const reader = res.body!.getReader();
  const read = reader.read();
  await waiting.promise;
  assert.equal(lolHtmlPool.stats.busy, before.busy + 1);
  await reader.cancel();
  assert.deepEqual(await read, { done: true, value: undefined });
  assertPoolIdle();
  assert.equal(lolHtmlPool.stats.discarded, before.discarded + 1);
  for (const resume of inputResume) resume();
  assert.deepEqual(await resumed.promise, new TypeError(STALE_MESSAGE));
});
