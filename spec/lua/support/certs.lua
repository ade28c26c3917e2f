-- Certificates for the TLS specs, made with the openssl program in a spec's own directory:
-- a CA; a node certificate it signed for 127.0.0.1 and localhost; a client certificate it
-- signed; and another, unrelated CA (self-signed, with its key) to be trusted or shown by
-- mistake. Valid two days.
local cluster = require "support.cluster"

local certs = {}

function certs.make(dir)
  local status, out = cluster.sh(string.format([[{
cd '%s' &&
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=spec-ca &&
openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=localhost &&
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext.cnf &&
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 2 -extfile ext.cnf &&
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other &&
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client &&
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2; } 2>&1]], dir))
  assert(status == 0, out)
  return { ca = dir .. "/ca.pem", cert = dir .. "/node.pem", key = dir .. "/node.key",
           other = dir .. "/other.pem", other_key = dir .. "/other.key",
           client = dir .. "/client.pem", client_key = dir .. "/client.key" }
end

return certs
