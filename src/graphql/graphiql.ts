/**
 * GraphiQL for a browser: a small page that loads GraphiQL 3 and React 18 from unpkg (nothing of
 * them is bundled into the worker). The page holds no key: the user puts theirs in the headers tab, and
 * it is not kept in the browser's storage.
 */
export const GRAPHIQL_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hotpath GraphiQL</title>
<style>body { margin: 0; } #graphiql { height: 100dvh; }</style>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
<script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
</head>
<body>
<div id="graphiql">Loading GraphiQL from unpkg.com...</div>
<script>
const fetcher = GraphiQL.createFetcher({ url: location.pathname });
const defaultQuery = "# Put your API key in the Headers tab below, then run: the schema shows your datasets.\\n{\\n  _datasets\\n}\\n";
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultHeaders: '{\\n  "Authorization": "Bearer YOUR_KEY"\\n}',
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: "headers",
  }),
);
</script>
</body>
</html>
`;
