/** What the operator does after the very first start: printed once, after the address is known. */
export function firstStartSteps(url: string, token: string | undefined): string {
  const tokenText = token ?? '$SHELF_BOOTSTRAP_TOKEN';
  const insecure = url.startsWith('http://') ? ' --insecure' : '';
  return [
    'Next steps:',
    `  1. Give "admin" a password for the web UI:  shelf admin user passwd admin --url ${url} --token ${tokenText}`,
    `  2. Sign in at ${url}/signin, then create access tokens for every day at ${url}/tokens`,
    `  3. Point Apptainer at this server:  apptainer remote add${insecure} shelf ${url}   (paste a token)`,
    '',
  ].join('\n');
}
