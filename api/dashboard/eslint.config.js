import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "../taskq_api/dashboard_dist/"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    files: ["**/*.{ts,tsx}"],
    languageOptions: { globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      "no-console": ["error", { allow: ["warn", "error"] }],
      // Task data is always rendered as text: no HTML from strings, anywhere.
      "no-restricted-syntax": [
        "error",
        { selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']", message: "render task data as text" },
        { selector: "MemberExpression[property.name=/^(innerHTML|outerHTML)$/]", message: "render task data as text" },
        { selector: "CallExpression[callee.property.name='insertAdjacentHTML']", message: "render task data as text" },
      ],
    },
  },
);
