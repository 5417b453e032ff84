// Starts GraphiQL on this page: queries and mutations over POST /graphql,
// subscriptions over the WebSocket at /graphql/ws (graphql-transport-ws; the
// header editor's headers go in connection_init, where the server reads
// Authorization and X-API-Key).
(function () {
  'use strict';

  // The header editor starts with this hint. Until it is replaced by a real
  // token the fetcher leaves the header out, so `login` works as it stands.
  var PLACEHOLDER = 'Bearer <accessToken from login>';
  var DEFAULT_HEADERS = JSON.stringify({ Authorization: PLACEHOLDER }, null, 2);
  var DEFAULT_QUERY = [
    '# Welcome to the threatwatch API.',
    '#',
    '# 1. Run SignIn with your username and password.',
    '# 2. Paste its accessToken into the Authorization header below',
    '#    (keep the word Bearer), then run Queue.',
    '',
    'mutation SignIn {',
    '  login(username: "admin", password: "") {',
    '    accessToken',
    '    refreshToken',
    '    expiresIn',
    '  }',
    '}',
    '',
    'query Queue {',
    '  alerts(first: 10) {',
    '    nodes { id severity status occurrences lastSeenAt event { source eventType } }',
    '  }',
    '}',
    '',
  ].join('\n');

  var here = new URL(window.location.href);
  var socket = new URL('/graphql/ws', here);
  socket.protocol = here.protocol === 'https:' ? 'wss:' : 'ws:';

  var base = GraphiQL.createFetcher({
    url: new URL('/graphql', here).href,
    subscriptionUrl: socket.href,
  });

  function withoutPlaceholder(headers) {
    if (!headers) return headers;
    var out = {};
    Object.keys(headers).forEach(function (k) {
      var v = headers[k];
      if (k.toLowerCase() === 'authorization' && (v === PLACEHOLDER || v === '' || v === 'Bearer ')) return;
      out[k] = v;
    });
    return out;
  }

  function fetcher(params, opts) {
    var o = Object.assign({}, opts || {});
    o.headers = withoutPlaceholder(o.headers);
    return base(params, o);
  }

  // A shared link may carry the query: /graphql?query=...
  var shared = here.searchParams.get('query');

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      query: shared || undefined,
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: DEFAULT_HEADERS,
      headers: DEFAULT_HEADERS,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    })
  );
})();
