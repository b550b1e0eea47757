S=${S:-localhost:8080}                   # the server (make run's default)
ADMIN=${ADMIN:-$(cat data/admin-token)}  # the admin token make run generated
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }  # a string field of JSON, like jq -r .NAME
J='content-type: application/json'

# 1. An admin registers a plugin. The plaintext secret is shown only here.
OUT=$(curl -s -X POST $S/api/plugin -H "Authorization: Bearer $ADMIN" -H "$J" \
  -d '{"name":"Chart","scopes":["table|read","record|read"]}'); echo "$OUT"
# {"id":"plu...","name":"Chart","scopes":["table|read","record|read"],"secret":"..."}
PLUGIN=$(echo "$OUT" | field id); SECRET=$(echo "$OUT" | field secret)

# 2. The host (the gateway, for a signed-in user) issues an auth code for a base.
OUT=$(curl -s -X POST $S/api/plugin/$PLUGIN/authCode -H "Authorization: Bearer $ADMIN" -H "$J" \
  -d '{"baseId":"bseABC"}'); echo "$OUT"
# {"code":"ptc_...","expiresIn":300}
CODE=$(echo "$OUT" | field code)

# 3. The plugin's backend trades secret + code for tokens: the documented GET with a body...
BODY="{\"baseId\":\"bseABC\",\"secret\":\"$SECRET\",\"scopes\":[\"table|read\"],\"authCode\":\"$CODE\"}"
curl -s -X GET $S/api/plugin/$PLUGIN/token -H "$J" -d "$BODY"
# {"accessToken":"pta_...","expiresIn":600,"refreshExpiresIn":2592000,"refreshToken":"ptr_...","scopes":["table|read"]}

# The code is single-use: presented again, it is refused, and the tokens it gave are revoked.
curl -s -X GET $S/api/plugin/$PLUGIN/token -H "$J" -d "$BODY"
# {"code":"validation_error","message":"Invalid auth code","status":400}

# ...or POST, which Teable's own clients send (a browser cannot send a GET with a body),
# with a fresh code.
CODE=$(curl -s -X POST $S/api/plugin/$PLUGIN/authCode -H "Authorization: Bearer $ADMIN" -H "$J" \
  -d '{"baseId":"bseABC"}' | field code)
OUT=$(curl -s -X POST $S/api/plugin/$PLUGIN/token -H "$J" \
  -d "{\"baseId\":\"bseABC\",\"secret\":\"$SECRET\",\"scopes\":[\"table|read\"],\"authCode\":\"$CODE\"}"); echo "$OUT"
# {"accessToken":"pta_...","expiresIn":600,"refreshExpiresIn":2592000,"refreshToken":"ptr_...","scopes":["table|read"]}
REFRESH=$(echo "$OUT" | field refreshToken)

# 4. The backend refreshes: a new pair; the old refresh and access tokens die at once.
OUT=$(curl -s -X POST $S/api/plugin/$PLUGIN/refreshToken -H "$J" \
  -d "{\"refreshToken\":\"$REFRESH\",\"secret\":\"$SECRET\"}"); echo "$OUT"
# {"accessToken":"pta_...","expiresIn":600,"refreshExpiresIn":2592000,"refreshToken":"ptr_...","scopes":["table|read"]}
ACCESS=$(echo "$OUT" | field accessToken); REFRESH=$(echo "$OUT" | field refreshToken)

# 5. A gateway asks what a token grants...
curl -s -X POST $S/api/token/introspect -H "Authorization: Bearer $ADMIN" -H "$J" \
  -d "{\"token\":\"$ACCESS\"}"
# {"active":true,"baseId":"bseABC","exp":...,"iat":...,"pluginId":"plu...","scopes":["table|read"],"tokenType":"access"}

# ...and the plugin revokes its refresh token: every token of the family dies.
curl -s -X POST $S/api/token/revoke -H "$J" \
  -d "{\"token\":\"$REFRESH\",\"pluginId\":\"$PLUGIN\",\"secret\":\"$SECRET\"}"
# {"revoked":true}
curl -s -X POST $S/api/token/introspect -H "Authorization: Bearer $ADMIN" -H "$J" \
  -d "{\"token\":\"$ACCESS\"}"
# {"active":false}

# 6. Read the plugin back (secret masked), rotate its secret, delete it.
curl -s $S/api/plugin/$PLUGIN -H "Authorization: Bearer $ADMIN"
# {"id":"plu...","name":"Chart","scopes":["table|read","record|read"],"secret":"****..."}
curl -s -X POST $S/api/plugin/$PLUGIN/regenerate-secret -H "Authorization: Bearer $ADMIN"
# {"id":"plu...","secret":"..."}
curl -s -X DELETE $S/api/plugin/$PLUGIN -H "Authorization: Bearer $ADMIN" -w '%{http_code}\n'
# 204
